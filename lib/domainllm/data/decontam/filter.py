"""The decontamination step: remove documents sharing n-grams with an evaluation set."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from domainllm.data.decontam.index import EvalIndex, build_index
from domainllm.data.ngrams import ngram_hashes
from domainllm.data.records import Removal
from domainllm.spec.decontam import DecontamConfig


class Decontaminator:
    """`batch(rows) -> [Removal | None]`; `by_set` counts removals per evaluation set."""

    name = "decontaminate"

    def __init__(self, cfg: DecontamConfig, index: EvalIndex | None = None) -> None:
        self.cfg = cfg
        self.index = index if index is not None else build_index(cfg)
        self.by_set: Counter[str] = Counter()

    def batch(self, rows: Sequence[dict]) -> list[Removal | None]:
        verdicts: list[Removal | None] = [None] * len(rows)
        if not len(self.index.hashes):
            return verdicts
        todo = [i for i, r in enumerate(rows) if r.get("source") not in self.cfg.skip_sources]
        hashes, ends, _ = ngram_hashes([rows[i]["text"] for i in todo], self.index.ns)
        pos = self.index.hits(hashes)
        start = 0
        for i, end in zip(todo, ends.tolist(), strict=True):
            hit = pos[start:end]
            hit = hit[hit >= 0]
            start = end
            if len(hit) >= self.cfg.min_hits:
                sets = np.bincount(self.index.set_of[hit], minlength=len(self.index.names))
                name = self.index.names[int(sets.argmax())]
                self.by_set[name] += 1
                verdicts[i] = Removal("eval_contamination", f"{len(hit)} n-grams shared with eval set {name}")
        return verdicts

    def counts(self) -> dict[str, int]:
        """Removals per evaluation set."""
        return {f"contaminated.{k}": v for k, v in self.by_set.items()}
