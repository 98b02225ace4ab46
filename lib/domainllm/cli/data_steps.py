"""The steps behind `domainllm data STEP`: each builder validates its options (failing
before any work) and returns an object whose `run(in_fs, in_dir, out_fs, out_dir)` applies
the step to the ingested input and returns its counts."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from domainllm.data.records import InputError


def section(args: argparse.Namespace, model: type, field: str) -> Any:
    """A spec section from `--config FILE`, validated with the spec's own messages."""
    from domainllm.spec.loader import SpecError

    if not getattr(args, "config", None):
        return model()
    import yaml

    path = Path(args.config)
    if not path.is_file():
        raise SpecError(f"--config file not found: {path}")
    return validate(model, yaml.safe_load(path.read_text()) or {}, f"{field} config {path}", {"base_dir": path.parent})


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


def quality(args: argparse.Namespace) -> _PerDocStep:
    from domainllm.data.quality import QualityFilter
    from domainllm.spec.quality import QualityConfig

    cfg = section(args, QualityConfig, "data.quality")
    return _PerDocStep(QualityFilter(cfg), cfg)


def dedup(args: argparse.Namespace) -> _DedupSteps:
    from domainllm.spec.dedup import DedupConfig

    cfg = section(args, DedupConfig, "data.dedup")
    overrides = {"threshold": args.threshold, "ngram": args.ngram, "num_perm": args.num_perm,
                 "verify": False if args.no_verify else None}  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        cfg = validate(DedupConfig, {**cfg.model_dump(), **overrides}, "command-line options")
    return _DedupSteps(cfg)


def compliance(args: argparse.Namespace) -> _PerDocStep:
    from domainllm.data.compliance import ComplianceFilter
    from domainllm.spec.compliance import ComplianceConfig

    cfg = section(args, ComplianceConfig, "data.compliance")
    return _PerDocStep(ComplianceFilter(cfg), cfg)


class _DecontamStep(_PerDocStep):
    def run(self, in_fs, in_dir: str, out_fs, out_dir: str) -> Counter[str]:
        counts = super().run(in_fs, in_dir, out_fs, out_dir)
        counts.update({**self.step.counts(), **self.step.index.counts})
        return counts


def decontaminate(args: argparse.Namespace) -> _DecontamStep:
    from domainllm.data.decontam import Decontaminator
    from domainllm.spec.decontam import DecontamConfig

    cfg = section(args, DecontamConfig, "data.decontamination")
    sets = [s.model_dump() for s in cfg.eval_sets]
    for item in args.eval_set:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--eval-set {item!r}: expected NAME=PATH, e.g. --eval-set perl-qa=evals/perl-qa.jsonl")
        sets.append({"name": name, "path": str(Path(path).resolve())})
    data = {**cfg.model_dump(), "eval_sets": sets, **({"ngram": args.ngram} if args.ngram else {})}
    cfg = validate(DecontamConfig, data, "decontamination options")
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


def mix(args: argparse.Namespace) -> _MixStep:
    from domainllm.spec.mix import MixConfig

    return _MixStep(section(args, MixConfig, "data.mix"))


def pack(args: argparse.Namespace) -> _PackStep:
    from domainllm.spec.pack import PackConfig

    if not Path(args.tokenizer).is_dir():
        raise InputError(f"--tokenizer {args.tokenizer}: no such folder (a Hugging Face tokenizer or model folder)")
    return _PackStep(validate(PackConfig, {"seq_len": args.seq_len}, "pack options"), str(Path(args.tokenizer).resolve()))


def pii(args: argparse.Namespace) -> _PiiSteps:
    from domainllm.spec.pii import PiiConfig

    cfg = section(args, PiiConfig, "data.pii")
    overrides: dict[str, Any] = {}
    if args.ner_model:
        overrides["ner_model"] = str(Path(args.ner_model).resolve())
    if args.no_names:
        overrides.update(names_en=False, names_zh=False)
    elif args.no_zh_names:
        overrides["names_zh"] = False
    if args.entities:
        overrides["entities"] = tuple(e.strip().upper() for e in args.entities.split(",") if e.strip())
    if overrides:
        cfg = validate(PiiConfig, {**cfg.model_dump(), **overrides}, "command-line options")
    from domainllm.data.pii.step import PiiStep  # after validation: presidio takes seconds to import

    return _PiiSteps(PiiStep(cfg), cfg)


def validate(model: type, data: dict, what: str, context: dict | None = None) -> Any:
    from pydantic import ValidationError

    from domainllm.spec.loader import SpecError

    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()]
        raise SpecError(f"invalid {what}:\n  " + "\n  ".join(lines)) from None
