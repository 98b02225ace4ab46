"""Gopher repetition rules (Rae et al. 2021, table A1): duplicated lines, paragraphs and
n-grams measured as fractions of items and of characters."""

from __future__ import annotations

from collections import Counter

from domainllm.data.records import Removal
from domainllm.spec.quality import ProseRules


def _dup_stats(items: list[str]) -> tuple[float, float]:
    """(fraction of items that repeat an earlier one, fraction of their characters)."""
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_items = dup_chars = total_chars = 0
    for item in items:
        total_chars += len(item)
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items / len(items), dup_chars / max(total_chars, 1)


def _top_ngram_fraction(words: list[str], n: int, total_chars: int) -> float:
    if len(words) < n:
        return 0.0
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    return sum(len(w) for w in gram) * count / total_chars


def _dup_ngram_fraction(words: list[str], n: int, total_chars: int) -> float:
    if len(words) < n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = bytearray(len(words))
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i : i + n] = b"\x01" * n
    return sum(len(w) for w, c in zip(words, covered, strict=True) if c) / total_chars


def repetition_removal(
    lines: list[str], paragraphs: list[str], words: list[str], rules: ProseRules
) -> Removal | None:
    line_frac, line_chars = _dup_stats(lines)
    para_frac, para_chars = _dup_stats(paragraphs)
    for value, limit, reason in (
        (line_frac, rules.max_dup_line_fraction, "dup_lines"),
        (para_frac, rules.max_dup_para_fraction, "dup_paragraphs"),
        (line_chars, rules.max_dup_line_char_fraction, "dup_line_chars"),
        (para_chars, rules.max_dup_para_char_fraction, "dup_paragraph_chars"),
    ):
        if limit is not None and value > limit:
            return Removal(reason, f"{value:.3f} > {limit}")
    total_chars = sum(len(w) for w in words)
    if not total_chars:
        return None
    for n, limit in sorted(rules.top_ngram_max_char_fraction.items()):
        value = _top_ngram_fraction(words, n, total_chars)
        if value > limit:
            return Removal(f"top_{n}gram", f"{value:.3f} > {limit}")
    for n, limit in sorted(rules.dup_ngram_max_char_fraction.items()):
        value = _dup_ngram_fraction(words, n, total_chars)
        if value > limit:
            return Removal(f"dup_{n}grams", f"{value:.3f} > {limit}")
    return None
