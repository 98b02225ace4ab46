"""The PII step: scrub every document's text in place; nothing is removed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from domainllm.data.pii.scrubber import Scrubber
from domainllm.data.records import Removal
from domainllm.spec.pii import PiiConfig


class PiiStep:
    """A `DocStep` that rewrites `row["text"]`; counts findings by type in `found`."""

    name = "pii"

    def __init__(self, cfg: PiiConfig) -> None:
        self.cfg = cfg
        ner = Path(cfg.ner_model) if cfg.ner_model else None
        self.scrubber = Scrubber(cfg.entities, ner, cfg.ner_languages, cfg.min_ner_score, cfg.keep_ip_scopes, cfg.names_en,
                                 cfg.names_zh)  # fmt: skip
        self.found: Counter[str] = Counter()
        self.docs_with_pii = 0

    def batch(self, rows: Sequence[dict]) -> list[Removal | None]:
        by_lang: dict[str, list[dict]] = {}
        for row in rows:
            by_lang.setdefault(row.get("lang") or "en", []).append(row)
        for lang, group in by_lang.items():
            for row, (text, counts) in zip(group, self.scrubber.scrub_many([r["text"] for r in group], lang), strict=True):
                if counts:
                    row["text"] = text
                    self.found.update(counts)
                    self.docs_with_pii += 1
        return [None] * len(rows)

    def counts(self) -> dict[str, int]:
        return {**{f"pii.{k}": v for k, v in self.found.items()}, "docs_with_pii": self.docs_with_pii}
