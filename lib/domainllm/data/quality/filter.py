"""The quality step: rules by document kind, the bad-word list, then the optional model."""

from __future__ import annotations

from collections.abc import Sequence

from domainllm.data.blocklist import BlockListMatcher
from domainllm.data.quality.code import code_removal
from domainllm.data.quality.prose import prose_removal
from domainllm.data.records import Removal
from domainllm.spec.quality import QualityConfig


class QualityFilter:
    """`batch(rows) -> [Removal | None]`: one verdict per document, in order."""

    name = "quality"

    def __init__(self, cfg: QualityConfig) -> None:
        self.cfg = cfg
        self.bad_words = BlockListMatcher(cfg.bad_words, "bad_words")
        self.scorer = None
        if cfg.scorer is not None:
            from domainllm.data.classifier import TransformersScorer

            self.scorer = TransformersScorer(cfg.scorer)

    def rules(self, text: str, kind: str) -> Removal | None:
        verdict = code_removal(text, self.cfg.code) if kind == "code" else prose_removal(text, self.cfg.prose)
        return verdict or self.bad_words(text)

    def batch(self, rows: Sequence[dict]) -> list[Removal | None]:
        skip = self.cfg.skip_sources
        verdicts = [None if r.get("source") in skip else self.rules(r["text"], r.get("kind", "text")) for r in rows]
        if self.scorer is not None:
            todo = [i for i, v in enumerate(verdicts) if v is None]
            scores = self.scorer.scores([rows[i]["text"] for i in todo])
            for i, score in zip(todo, scores, strict=True):
                if score < self.cfg.scorer.min_score:
                    verdicts[i] = Removal("model_score", f"score {score:.3f} < {self.cfg.scorer.min_score}")
        return verdicts
