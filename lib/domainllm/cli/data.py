"""`domainllm data ...`: data steps as standalone commands (INPUT -> OUTPUT folders)."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="run a data step on files outside a pipeline")
    data_sub = parser.add_subparsers(dest="data_command", required=True, metavar="STEP")

    ing = data_sub.add_parser(
        "ingest",
        help="JSONL / Parquet / text / code tree -> normalized Parquet, rejects to OUTPUT/quarantine/",
        description="Example: domainllm data ingest corpus/ out/ --format auto --domain domain",
    )
    ing.add_argument("input", help="a file or a folder (local path or object-store URI)")
    ing.add_argument("output", help="output folder: OUTPUT/*.parquet, OUTPUT/quarantine/*.parquet")
    ing.add_argument("--format", default="auto", choices=["auto", "jsonl", "parquet", "text", "code"])
    ing.add_argument("--domain", default="domain", choices=["domain", "general"])
    ing.add_argument("--source-name", help="value of the `source` column (default: from INPUT's name)")
    ing.add_argument("--text-field", default="text")
    ing.add_argument("--id-field", default="id")
    ing.add_argument("--lang", default=None, help="natural language of the text, e.g. en")
    ing.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    ing.set_defaults(handler=_ingest)


def _source_name(path: str) -> str:
    base = Path(path.rstrip("/")).name.lower() or "input"
    return (re.sub(r"[^a-z0-9_-]+", "-", base).strip("-_") or "input")[:63]


def _ingest(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from domainllm.artifacts import Manifest, join, new_staging, publish, url_to_fs
    from domainllm.data.ingest import ingest, source_fingerprint
    from domainllm.data.records import InputError
    from domainllm.spec.data import IngestConfig
    from domainllm.spec.sources import Source
    from domainllm.stages.runner import code_version

    try:
        source = Source.model_validate(
            {
                "name": args.source_name or _source_name(args.input), "path": args.input,
                "format": args.format, "domain": args.domain, "text_field": args.text_field,
                "id_field": args.id_field, "lang": args.lang,
            },
            context={"base_dir": Path.cwd()},
        )  # fmt: skip
    except ValidationError as exc:
        raise InputError(f"bad arguments: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    cfg = IngestConfig()

    fs, out = url_to_fs(args.output)
    if fs.exists(out) and fs.ls(out) and not args.force:
        raise FileExistsError(f"output folder {args.output} exists and is not empty; pass --force to replace it")
    parent = out.rstrip("/").rsplit("/", 1)[0] if "/" in out.rstrip("/") else "."
    name = out.rstrip("/").rsplit("/", 1)[-1]
    inputs = {f"source:{source.name}": source_fingerprint(source)}
    started, t0 = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), time.monotonic()
    staging_root = join(parent, ".domainllm-staging")
    staging = new_staging(fs, staging_root, name)
    report = ingest([source], cfg, fs, staging.path)
    config_doc = json.dumps({"source": source.model_dump(mode="json"), "ingest": cfg.model_dump()}, sort_keys=True)
    manifest = Manifest(
        stage="data.ingest",
        run_id="standalone",
        fingerprint=hashlib.sha256((config_doc + json.dumps(inputs, sort_keys=True)).encode()).hexdigest(),
        inputs=inputs,
        outputs=staging.describe_outputs(),
        counts=dict(report.counts),
        code_version=code_version(),
        spec_digest=hashlib.sha256(config_doc.encode()).hexdigest(),
        started_at=started,
        finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        duration_s=round(time.monotonic() - t0, 3),
    )
    publish(staging, out, manifest, join(parent, ".domainllm-trash"))
    for leftover in (staging_root, join(parent, ".domainllm-trash")):
        if fs.exists(leftover) and not fs.ls(leftover):
            fs.rmdir(leftover)
    counts = dict(sorted(report.counts.items()))
    print(json.dumps({"output": args.output, **counts}))
    return 0
