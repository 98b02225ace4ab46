"""A whole-word, case-insensitive block list."""

from __future__ import annotations

import re

import fsspec

from domainllm.data.records import Removal
from domainllm.spec.lists import BlockList


def _phrase(words: str) -> str:
    """A listed phrase matches across any run of whitespace (`white  power`, line breaks)."""
    return r"\s+".join(re.escape(w) for w in words.split())


class BlockListMatcher:
    """Counts whole-word, case-insensitive hits of a block list; too many -> `reason`."""

    def __init__(self, cfg: BlockList, reason: str = "bad_words") -> None:
        self.reason = reason
        words = {w.strip().lower() for w in cfg.words if w.strip()}
        if cfg.path:
            with fsspec.open(cfg.path, "rt", encoding="utf-8") as fh:
                words |= {line.strip().lower() for line in fh if line.strip() and not line.startswith("#")}
        self.max_count = cfg.max_count
        self._pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(_phrase(w) for w in sorted(words, key=len, reverse=True)) + r")(?!\w)",
                       re.IGNORECASE)  # fmt: skip
            if words
            else None
        )

    def __call__(self, text: str) -> Removal | None:
        if self._pattern is None:
            return None
        count = sum(1 for _ in self._pattern.finditer(text))
        if count > self.max_count:
            # The detail names how many, never which: block-list hits are not for logs.
            return Removal(self.reason, f"{count} block-listed words > {self.max_count}")
        return None
