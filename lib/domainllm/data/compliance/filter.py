"""The compliance step: each category's block list, then the optional classifier."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from domainllm.data.blocklist import BlockListMatcher
from domainllm.data.records import Removal
from domainllm.spec.compliance import ComplianceConfig
from domainllm.spec.lists import BlockList

BUILTIN_CATEGORIES = ("illegal", "sexual", "hate")


def builtin_list(category: str) -> BlockList:
    text = resources.files("domainllm.data.compliance").joinpath("lists", f"{category}.txt").read_text("utf-8")
    return BlockList(words=tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")))


def category_lists(cfg: ComplianceConfig) -> dict[str, BlockList]:
    """Built-in lists (when on) merged with the configured ones, category by category."""
    lists = {c: builtin_list(c) for c in BUILTIN_CATEGORIES} if cfg.builtin_lists else {}
    for name, extra in cfg.categories.items():
        base = lists.get(name)
        lists[name] = extra if base is None else extra.model_copy(update={"words": base.words + extra.words})
    return lists


class ComplianceFilter:
    """`batch(rows) -> [Removal | None]`. Details give counts and scores, never the words hit."""

    name = "compliance"

    def __init__(self, cfg: ComplianceConfig) -> None:
        self.cfg = cfg
        self.matchers = [BlockListMatcher(bl, f"{name}_content") for name, bl in category_lists(cfg).items()]
        self.classifier = None
        if cfg.classifier is not None:
            from domainllm.data.classifier import TransformersScorer

            self.classifier = TransformersScorer(cfg.classifier, "data.compliance.classifier")

    def rules(self, text: str) -> Removal | None:
        for matcher in self.matchers:
            verdict = matcher(text)
            if verdict is not None:
                return verdict
        return None

    def batch(self, rows: Sequence[dict]) -> list[Removal | None]:
        skip = self.cfg.skip_sources
        verdicts = [None if r.get("source") in skip else self.rules(r["text"]) for r in rows]
        if self.classifier is not None:
            clf = self.cfg.classifier
            todo = [i for i, v in enumerate(verdicts) if v is None and rows[i].get("source") not in skip]
            for i, score in zip(todo, self.classifier.scores([rows[i]["text"] for i in todo]), strict=True):
                if score >= clf.max_score:
                    verdicts[i] = Removal(f"classifier_{clf.label}", f"score {score:.3f} >= {clf.max_score}")
        return verdicts
