"""`domainllm data STEP INPUT OUTPUT`: data steps as standalone commands.

INPUT is a JSONL/Parquet/text file or a folder (code trees too). Records are read the
way the ingest stage reads them (bad ones go to OUTPUT/quarantine/ with their reason);
the step's kept documents go to OUTPUT/part-*.parquet with input ids preserved, removed
ones to OUTPUT/removed/ with their reason. Counts are printed as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from domainllm.cli import data_steps as steps
from domainllm.data.records import InputError
from domainllm.spec.pii import PII_ENTITIES


def _add_io(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a file or a folder (local path or object-store URI)")
    p.add_argument("output", help="output folder")
    p.add_argument("--format", default="auto", choices=["auto", "jsonl", "parquet", "text", "code"])
    p.add_argument("--domain", default="domain", choices=["domain", "general"])
    p.add_argument("--source-name", help="value of the `source` column (default: from INPUT's name)")
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", default="id")
    p.add_argument("--lang", default=None, help="natural language of the text, e.g. en")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="run a data step on files outside a pipeline")
    data_sub = parser.add_subparsers(dest="data_command", required=True, metavar="STEP")

    def step(name: str, help: str, example: str, make: Callable | None, section: str | None = None):
        p = data_sub.add_parser(name, help=help, description=f"Example: {example}")
        _add_io(p)
        if section:
            p.add_argument("--config", help=f"YAML with the `{section}` section's fields (defaults otherwise)")
        p.set_defaults(handler=lambda a: _standalone(a, name, make))
        return p

    step("ingest", "normalize into Parquet; rejects to OUTPUT/quarantine/", "domainllm data ingest corpus/ out/", None)
    step("quality", "rule filters (+ optional model); removed docs to OUTPUT/removed/",
         "domainllm data quality docs.jsonl out/ --config quality.yaml", steps.quality, "data.quality")  # fmt: skip
    dd = step("dedup", "exact + MinHash LSH near-dedup; removed docs to OUTPUT/removed/ with duplicate_of",
              "domainllm data dedup docs.jsonl out/ --threshold 0.8", steps.dedup, "data.dedup")  # fmt: skip
    dd.add_argument("--threshold", type=float, help="Jaccard similarity threshold (default 0.8)")
    dd.add_argument("--ngram", type=int, help="words per shingle (default 3)")
    dd.add_argument("--num-perm", type=int, help="MinHash permutations (default 128)")
    dd.add_argument("--no-verify", action="store_true", help="skip exact Jaccard verification of candidate pairs")
    pii = step("scrub-pii", "replace PII with typed placeholders (<EMAIL>, <PHONE>, ...); report counts by type",
               "domainllm data scrub-pii docs.jsonl out/ --no-names", steps.pii, "data.pii")  # fmt: skip
    pii.add_argument("--ner-model", help="local spaCy or transformers NER model folder for English person names "
                                         "(default: the shipped en_core_web_sm)")  # fmt: skip
    pii.add_argument("--no-names", action="store_true", help="leave person names (English and Chinese) in the text")
    pii.add_argument("--no-zh-names", action="store_true", help="leave Chinese person names in the text")
    pii.add_argument("--entities", help="comma-separated subset of: " + ",".join(PII_ENTITIES))
    step("compliance", "remove illegal, sexual or hateful content (block lists + optional classifier)",
         "domainllm data compliance docs.jsonl out/ --config compliance.yaml", steps.compliance, "data.compliance")  # fmt: skip
    dec = step("decontaminate", "remove documents sharing 13-grams with evaluation sets; removed ones listed",
               "domainllm data decontaminate docs.jsonl out/ --eval-set mmlu=evals/mmlu.jsonl", steps.decontaminate,
               "data.decontamination")  # fmt: skip
    dec.add_argument("--eval-set", action="append", default=[], metavar="NAME=PATH",
                     help="an evaluation set (JSONL/Parquet file or folder); repeat for several")  # fmt: skip
    dec.add_argument("--ngram", type=int, help="words per n-gram (default 13)")
    step("mix", "sample to the domain/general ratio, order by curriculum, group similar documents",
         "domainllm data mix docs/ out/ --config mix.yaml (a record's `domain` field, or --domain, decides its group)",
         steps.mix, "data.mix")  # fmt: skip
    pk = step("pack", "tokenize and pack into fixed-length sequences (input_ids, position_ids, doc_lens)",
              "domainllm data pack docs.jsonl out/ --tokenizer models/base --seq-len 2048", steps.pack)  # fmt: skip
    pk.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizer or model folder")
    pk.add_argument("--seq-len", type=int, default=2048)


def _source_name(path: str) -> str:
    base = Path(path.rstrip("/")).name.lower() or "input"
    return (re.sub(r"[^a-z0-9_-]+", "-", base).strip("-_") or "input")[:63]


def _standalone(args: argparse.Namespace, name: str, make_step: Callable[[argparse.Namespace], Any] | None) -> int:
    from pydantic import ValidationError

    from domainllm.artifacts import Manifest, join, new_staging, publish, url_to_fs
    from domainllm.data.ingest import QUARANTINE_DIR, ingest, source_fingerprint
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
    step = make_step(args) if make_step else None  # bad step config fails before any work
    cfg = IngestConfig()

    fs, out = url_to_fs(args.output)
    if fs.exists(out) and fs.ls(out) and not args.force:
        raise FileExistsError(f"output folder {args.output} exists and is not empty; pass --force to replace it")
    parent = out.rstrip("/").rsplit("/", 1)[0] if "/" in out.rstrip("/") else "."
    inputs = {f"source:{source.name}": source_fingerprint(source)}
    started, t0 = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), time.monotonic()
    staging_root = join(parent, ".domainllm-staging")
    staging = new_staging(fs, staging_root, out.rstrip("/").rsplit("/", 1)[-1])

    counts: Counter[str] = Counter()
    if step is None:
        counts.update(ingest([source], cfg, fs, staging.path).counts)
    else:
        with tempfile.TemporaryDirectory(prefix="domainllm-input-") as tmp:
            local, _ = url_to_fs(tmp)
            report = ingest([source], cfg, local, tmp)
            counts.update({f"input.{k}": v for k, v in report.counts.items()})
            if local.exists(f"{tmp}/{QUARANTINE_DIR}"):
                fs.put(f"{tmp}/{QUARANTINE_DIR}", join(staging.path, QUARANTINE_DIR), recursive=True)
            counts.update(step.run(local, tmp, fs, staging.path))

    config_doc = json.dumps({"step": name, "source": source.model_dump(mode="json"),
                             "config": step.cfg.model_dump(mode="json") if step else {}}, sort_keys=True, default=str)  # fmt: skip
    manifest = Manifest(
        stage=f"data.{name}",
        run_id="standalone",
        fingerprint=hashlib.sha256((config_doc + json.dumps(inputs, sort_keys=True)).encode()).hexdigest(),
        inputs=inputs,
        outputs=staging.describe_outputs(),
        counts=dict(counts),
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
    print(json.dumps({"output": args.output, **dict(sorted(counts.items()))}))
    return 0
