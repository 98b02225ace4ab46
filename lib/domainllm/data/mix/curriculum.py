"""Curriculum scores: lower is simpler and comes first."""

from __future__ import annotations

import math
import re

_SYMBOL = re.compile(r"[^\w\s]")
_WORD = re.compile(r"\w+")


def simplicity_cost(text: str, kind: str) -> float:
    """Clean and simple first: short documents, few symbols, short words, prose before code.
    A cheap proxy for what a perplexity score would rank (no model needed)."""
    n = len(text)
    if n == 0:
        return 0.0
    words = _WORD.findall(text[:20_000])
    mean_word = sum(map(len, words)) / len(words) if words else 10.0
    symbols = len(_SYMBOL.findall(text[:20_000])) / min(n, 20_000)
    return math.log10(n + 10) + 5.0 * symbols + 0.15 * mean_word + (1.0 if kind == "code" else 0.0)


def cost(text: str, kind: str, order_by: str) -> float:
    if order_by == "length":
        return float(len(text))
    if order_by == "simplicity":
        return simplicity_cost(text, kind)
    return 0.0
