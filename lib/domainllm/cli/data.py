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

from domainllm.data.records import InputError


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

    ing = data_sub.add_parser(
        "ingest", help="normalize into Parquet; rejects to OUTPUT/quarantine/",
        description="Example: domainllm data ingest corpus/ out/",
    )  # fmt: skip
    _add_io(ing)
    ing.set_defaults(handler=lambda a: _standalone(a, "ingest", None))

    qual = data_sub.add_parser(
        "quality", help="rule filters (+ optional model); removed docs to OUTPUT/removed/",
        description="Example: domainllm data quality docs.jsonl out/ --config quality.yaml",
    )  # fmt: skip
    _add_io(qual)
    qual.add_argument("--config", help="YAML with the `data.quality` section's fields (defaults otherwise)")
    qual.set_defaults(handler=lambda a: _standalone(a, "quality", _quality_step))

    dd = data_sub.add_parser(
        "dedup", help="exact + MinHash LSH near-dedup; removed docs to OUTPUT/removed/ with duplicate_of",
        description="Example: domainllm data dedup docs.jsonl out/ --threshold 0.8",
    )  # fmt: skip
    _add_io(dd)
    dd.add_argument("--config", help="YAML with the `data.dedup` section's fields (defaults otherwise)")
    dd.add_argument("--threshold", type=float, help="Jaccard similarity threshold (default 0.8)")
    dd.add_argument("--ngram", type=int, help="words per shingle (default 5)")
    dd.add_argument("--num-perm", type=int, help="MinHash permutations (default 128)")
    dd.add_argument("--no-verify", action="store_true", help="skip exact Jaccard verification of candidate pairs")
    dd.set_defaults(handler=lambda a: _standalone(a, "dedup", _dedup_step))

    comp = data_sub.add_parser(
        "compliance", help="remove illegal, sexual or hateful content (block lists + optional classifier)",
        description="Example: domainllm data compliance docs.jsonl out/ --config compliance.yaml",
    )  # fmt: skip
    _add_io(comp)
    comp.add_argument("--config", help="YAML with the `data.compliance` section's fields (defaults otherwise)")
    comp.set_defaults(handler=lambda a: _standalone(a, "compliance", _compliance_step))

    dec = data_sub.add_parser(
        "decontaminate", help="remove documents sharing 13-grams with evaluation sets; removed ones listed",
        description="Example: domainllm data decontaminate docs.jsonl out/ --eval-set mmlu=evals/mmlu.jsonl",
    )  # fmt: skip
    _add_io(dec)
    dec.add_argument("--config", help="YAML with the `data.decontamination` section's fields")
    dec.add_argument("--eval-set", action="append", default=[], metavar="NAME=PATH",
                     help="an evaluation set (JSONL/Parquet file or folder); repeat for several")  # fmt: skip
    dec.add_argument("--ngram", type=int, help="words per n-gram (default 13)")
    dec.set_defaults(handler=lambda a: _standalone(a, "decontaminate", _decontam_step))

    mix = data_sub.add_parser(
        "mix", help="sample to the domain/general ratio, order by curriculum, group similar documents",
        description="Example: domainllm data mix docs/ out/ --config mix.yaml (INPUT's `domain` column decides the group)",
    )  # fmt: skip
    _add_io(mix)
    mix.add_argument("--config", help="YAML with the `data.mix` section's fields (defaults otherwise)")
    mix.set_defaults(handler=lambda a: _standalone(a, "mix", _mix_step))

    pk = data_sub.add_parser(
        "pack", help="tokenize and pack into fixed-length sequences (input_ids, position_ids, doc_lens)",
        description="Example: domainllm data pack docs.jsonl out/ --tokenizer models/base --seq-len 2048",
    )  # fmt: skip
    _add_io(pk)
    pk.add_argument("--tokenizer", required=True, help="a Hugging Face tokenizer or model folder")
    pk.add_argument("--seq-len", type=int, default=2048)
    pk.set_defaults(handler=lambda a: _standalone(a, "pack", _pack_step))

    pii = data_sub.add_parser(
        "scrub-pii", help="replace PII with typed placeholders (<EMAIL>, <PHONE>, ...); report counts by type",
        description="Example: domainllm data scrub-pii docs.jsonl out/ --ner-model models/en_core_web_sm",
    )  # fmt: skip
    _add_io(pii)
    pii.add_argument("--config", help="YAML with the `data.pii` section's fields (defaults otherwise)")
    pii.add_argument("--ner-model", help="local spaCy or transformers NER model folder, for person names")
    pii.add_argument("--entities", help="comma-separated subset of: " + ",".join(_pii_entities()))
    pii.set_defaults(handler=lambda a: _standalone(a, "scrub-pii", _pii_step))


def _source_name(path: str) -> str:
    base = Path(path.rstrip("/")).name.lower() or "input"
    return (re.sub(r"[^a-z0-9_-]+", "-", base).strip("-_") or "input")[:63]


def _section(args: argparse.Namespace, model: type, field: str) -> Any:
    """A spec section from `--config FILE`, validated with the spec's own messages."""
    from domainllm.spec.loader import SpecError

    if not getattr(args, "config", None):
        return model()
    import yaml

    path = Path(args.config)
    if not path.is_file():
        raise SpecError(f"--config file not found: {path}")
    return _validate(model, yaml.safe_load(path.read_text()) or {}, f"{field} config {path}", {"base_dir": path.parent})


class _PerDocStep:
    """A one-pass step (a `DocStep`) over the ingested input."""

    def __init__(self, step: Any, cfg: Any) -> None:
        self.step, self.cfg = step, cfg

    def run(self, in_fs, in_dir: str, out_fs, out_dir: str) -> Counter[str]:
        from domainllm.data.steps import run_step

        return run_step(self.step, in_fs, in_dir, out_fs, out_dir)


class _PiiSteps(_PerDocStep):
    """Scrub, then write `report.json`/`report.png` with counts by type (never values)."""

    def run(self, in_fs, in_dir: str, out_fs, out_dir: str) -> Counter[str]:
        from domainllm.data.pii.report import write_pii_report

        counts = super().run(in_fs, in_dir, out_fs, out_dir)
        counts.update(self.step.counts())
        write_pii_report(dict(counts), self.cfg, out_fs, out_dir, self.step.scrubber.detects_names)
        return counts


class _DedupSteps:
    """Signatures -> clusters -> filter, the three dedup stages in one process."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def run(self, in_fs, in_dir: str, out_fs, out_dir: str) -> Counter[str]:
        from domainllm.data.dedup import DuplicateFilter, find_duplicates, write_signatures
        from domainllm.data.dedup.report import write_dedup_report
        from domainllm.data.steps import run_step

        sig_dir = f"{in_dir}/.signatures"
        write_signatures(self.cfg, in_fs, in_dir, in_fs, sig_dir)
        result = find_duplicates(self.cfg, in_fs, sig_dir, in_fs, in_dir)
        counts = run_step(DuplicateFilter(result.duplicates), in_fs, in_dir, out_fs, out_dir)
        counts.update({k: v for k, v in result.counts.items() if k not in ("docs",)})
        write_dedup_report(result, out_fs, out_dir)
        return counts


def _quality_step(args: argparse.Namespace) -> _PerDocStep:
    from domainllm.data.quality import QualityFilter
    from domainllm.spec.quality import QualityConfig

    cfg = _section(args, QualityConfig, "data.quality")
    return _PerDocStep(QualityFilter(cfg), cfg)


def _dedup_step(args: argparse.Namespace) -> _DedupSteps:
    from domainllm.spec.dedup import DedupConfig

    cfg = _section(args, DedupConfig, "data.dedup")
    overrides = {"threshold": args.threshold, "ngram": args.ngram, "num_perm": args.num_perm,
                 "verify": False if args.no_verify else None}  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        cfg = _validate(DedupConfig, {**cfg.model_dump(), **overrides}, "command-line options")
    return _DedupSteps(cfg)


def _compliance_step(args: argparse.Namespace) -> _PerDocStep:
    from domainllm.data.compliance import ComplianceFilter
    from domainllm.spec.compliance import ComplianceConfig

    cfg = _section(args, ComplianceConfig, "data.compliance")
    return _PerDocStep(ComplianceFilter(cfg), cfg)


class _DecontamStep(_PerDocStep):
    def run(self, in_fs, in_dir: str, out_fs, out_dir: str) -> Counter[str]:
        counts = super().run(in_fs, in_dir, out_fs, out_dir)
        counts.update({**self.step.counts(), **self.step.index.counts})
        return counts


def _decontam_step(args: argparse.Namespace) -> _DecontamStep:
    from domainllm.data.decontam import Decontaminator
    from domainllm.spec.decontam import DecontamConfig

    cfg = _section(args, DecontamConfig, "data.decontamination")
    sets = [s.model_dump() for s in cfg.eval_sets]
    for item in args.eval_set:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--eval-set {item!r}: expected NAME=PATH, e.g. --eval-set perl-qa=evals/perl-qa.jsonl")
        sets.append({"name": name, "path": str(Path(path).resolve())})
    data = {**cfg.model_dump(), "eval_sets": sets, **({"ngram": args.ngram} if args.ngram else {})}
    cfg = _validate(DecontamConfig, data, "decontamination options")
    if not cfg.eval_sets:
        raise InputError("no evaluation sets: pass --eval-set NAME=PATH (or eval_sets in --config)")
    return _DecontamStep(Decontaminator(cfg), cfg)


class _MixStep:
    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def run(self, in_fs, in_dir: str, out_fs, out_dir: str) -> Counter[str]:
        from domainllm.data.mix import build_mix
        from domainllm.data.mix.report import write_mix_report

        result = build_mix(self.cfg, {}, in_fs, in_dir, out_fs, out_dir)
        write_mix_report(result, out_fs, out_dir)
        return Counter({**result.counts, **{f"chars.{k}": v for k, v in result.chars_by_source.items()}})


class _PackStep:
    def __init__(self, cfg: Any, tokenizer: str) -> None:
        self.cfg, self.tokenizer = cfg, tokenizer

    def run(self, in_fs, in_dir: str, out_fs, out_dir: str) -> Counter[str]:
        from transformers import AutoTokenizer

        from domainllm.data.docs import iter_docs
        from domainllm.data.pack import pack

        try:
            tok = AutoTokenizer.from_pretrained(self.tokenizer)
        except OSError as exc:
            raise InputError(f"--tokenizer {self.tokenizer}: not a tokenizer folder ({exc})") from None
        result = pack(iter_docs(in_fs, in_dir, columns=("text", "source")), tok, self.cfg.seq_len, out_fs, out_dir,
                      batch_docs=self.cfg.batch_docs, sequences_per_shard=self.cfg.sequences_per_shard)  # fmt: skip
        return Counter({"sequences": result.sequences, "docs": result.docs, "tail_tokens_dropped": result.tail_tokens_dropped,
                        **{f"tokens.{k}": v for k, v in result.tokens_by_source.items()}})  # fmt: skip


def _mix_step(args: argparse.Namespace) -> _MixStep:
    from domainllm.spec.mix import MixConfig

    return _MixStep(_section(args, MixConfig, "data.mix"))


def _pack_step(args: argparse.Namespace) -> _PackStep:
    from domainllm.spec.pack import PackConfig

    if not Path(args.tokenizer).is_dir():
        raise InputError(f"--tokenizer {args.tokenizer}: no such folder (a Hugging Face tokenizer or model folder)")
    return _PackStep(_validate(PackConfig, {"seq_len": args.seq_len}, "pack options"), str(Path(args.tokenizer).resolve()))


def _pii_entities() -> tuple[str, ...]:
    from domainllm.spec.pii import PII_ENTITIES

    return PII_ENTITIES


def _pii_step(args: argparse.Namespace) -> _PiiSteps:
    from domainllm.data.pii.step import PiiStep
    from domainllm.spec.pii import PiiConfig

    cfg = _section(args, PiiConfig, "data.pii")
    overrides: dict[str, Any] = {}
    if args.ner_model:
        overrides["ner_model"] = str(Path(args.ner_model).resolve())
    if args.entities:
        overrides["entities"] = tuple(e.strip().upper() for e in args.entities.split(",") if e.strip())
    if overrides:
        cfg = _validate(PiiConfig, {**cfg.model_dump(), **overrides}, "command-line options")
    return _PiiSteps(PiiStep(cfg), cfg)


def _validate(model: type, data: dict, what: str, context: dict | None = None) -> Any:
    from pydantic import ValidationError

    from domainllm.spec.loader import SpecError

    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()]
        raise SpecError(f"invalid {what}:\n  " + "\n  ".join(lines)) from None


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
