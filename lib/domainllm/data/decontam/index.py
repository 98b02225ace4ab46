"""The n-gram index of the evaluation sets: sorted 64-bit hashes with the set each came from."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pyarrow.parquet as pq

from domainllm.artifacts.fs import url_to_fs
from domainllm.data.ngrams import ngram_hashes
from domainllm.data.records import InputError
from domainllm.spec.decontam import DecontamConfig, EvalSet

log = logging.getLogger(__name__)


@dataclass
class EvalIndex:
    hashes: np.ndarray
    """Sorted, unique."""
    set_of: np.ndarray
    """Index into `names` of the (first) set each hash came from."""
    names: list[str]
    ns: tuple[int, ...]
    """The n-gram sizes documents must be hashed with: `ngram`, plus the lengths of short items."""
    counts: dict[str, int] = field(default_factory=dict)

    def hits(self, hashes: np.ndarray) -> np.ndarray:
        """Positions in `self.hashes` of those of `hashes` that are in the index (-1 if not)."""
        if not len(self.hashes) or not len(hashes):
            return np.full(len(hashes), -1)
        pos = np.searchsorted(self.hashes, hashes).clip(max=len(self.hashes) - 1)
        return np.where(self.hashes[pos] == hashes, pos, -1)


def _item_text(record: dict, fields: tuple[str, ...]) -> str:
    parts = []
    for key in fields or tuple(record):
        value = record.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    return "\n".join(parts)


def _files(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    if fs.isfile(root):
        return [root]
    return sorted(p for p in fs.find(root) if p.endswith((".jsonl", ".json", ".parquet")))


def read_items(es: EvalSet) -> list[str]:
    fs, root = url_to_fs(es.path)
    if not fs.exists(root):
        raise InputError(f"eval set {es.name!r}: {es.path} does not exist; fix data.decontamination.eval_sets")
    texts: list[str] = []
    for path in _files(fs, root):
        parquet = es.format == "parquet" or (es.format == "auto" and path.endswith(".parquet"))
        with fs.open(path, "rb") as fh:
            if parquet:
                records = pq.read_table(fh).to_pylist()
            else:
                records = []
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            records.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise InputError(f"eval set {es.name!r}: {path} line {n} is not JSON ({exc.msg})") from None
        texts.extend(_item_text(r, es.fields) for r in records if isinstance(r, dict))
    if not texts:
        raise InputError(f"eval set {es.name!r}: no records under {es.path}")
    return texts


def build_index(cfg: DecontamConfig, extra: dict[str, list[str]] | None = None) -> EvalIndex:
    """The n-gram index of `cfg.eval_sets`, plus `extra` sets given as their items' texts."""
    all_hashes, all_sets, short_lengths = [], [], set()
    counts: dict[str, int] = {}
    named = [(es.name, read_items(es)) for es in cfg.eval_sets] + list((extra or {}).items())
    for i, (name, texts) in enumerate(named):
        _, _, words = ngram_hashes(texts, [cfg.ngram])
        usable = words >= cfg.min_item_words
        too_short = int((~usable).sum())
        hashes, _, _ = ngram_hashes([t for t, ok in zip(texts, usable, strict=True) if ok], [cfg.ngram],
                                    whole_max=cfg.ngram - 1)  # fmt: skip
        short_lengths.update(int(w) for w in words[usable & (words < cfg.ngram)])
        all_hashes.append(hashes)
        all_sets.append(np.full(len(hashes), i, dtype=np.int32))
        counts[f"eval.{name}.items"] = len(texts)
        counts[f"eval.{name}.too_short"] = too_short
        log.info("decontamination: eval set %s: %d items, %d n-grams (%d items too short to match)",
                 name, len(texts), len(hashes), too_short)  # fmt: skip
    if not all_hashes:
        return EvalIndex(np.empty(0, np.uint64), np.empty(0, np.int32), [], (cfg.ngram,), counts)
    hashes, sets = np.concatenate(all_hashes), np.concatenate(all_sets)
    order = np.lexsort((sets, hashes))
    hashes, sets = hashes[order], sets[order]
    first = np.r_[True, hashes[1:] != hashes[:-1]]
    return EvalIndex(hashes[first], sets[first], [n for n, _ in named],
                     tuple(sorted({cfg.ngram, *short_lengths})), counts)  # fmt: skip
