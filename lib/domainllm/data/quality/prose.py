"""Rules for natural-language documents (Gopher quality, C4 boilerplate, FineWeb lines)."""

from __future__ import annotations

from domainllm.data.quality.repetition import repetition_removal
from domainllm.data.quality.text_stats import cjk_fraction, lines, paragraphs, words
from domainllm.data.records import Removal
from domainllm.spec.quality import ProseRules

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_BULLETS = ("•", "●", "○", "■", "□", "▪", "‣", "–", "-", "*")


def _over(value: float, limit: float | None) -> bool:
    return limit is not None and value > limit


def _under(value: float, limit: float | None) -> bool:
    return limit is not None and value < limit


def prose_removal(text: str, rules: ProseRules) -> Removal | None:
    toks = words(text)
    n = len(toks)
    if _under(n, rules.min_words):
        return Removal("too_few_words", f"{n} < {rules.min_words}")
    if _over(n, rules.max_words):
        return Removal("too_many_words", f"{n} > {rules.max_words}")

    lowered = text.lower()
    for pattern in rules.boilerplate_patterns:
        if pattern in lowered:
            return Removal("boilerplate", f"contains {pattern!r}")

    if cjk_fraction(text) < 0.3:  # word-length rules assume space-separated words
        mean_len = sum(len(t) for t in toks) / n if n else 0.0
        if _under(mean_len, rules.min_mean_word_length):
            return Removal("short_words", f"mean word length {mean_len:.2f} < {rules.min_mean_word_length}")
        if _over(mean_len, rules.max_mean_word_length):
            return Removal("long_words", f"mean word length {mean_len:.2f} > {rules.max_mean_word_length}")

    if n:
        symbols = text.count("#") + text.count("...") + text.count("…")
        if _over(symbols / n, rules.max_symbol_word_ratio):
            return Removal("symbols", f"symbol/word ratio {symbols / n:.3f} > {rules.max_symbol_word_ratio}")
        alpha = sum(1 for t in toks if any(c.isalpha() for c in t)) / n
        if _under(alpha, rules.min_alpha_word_fraction):
            return Removal("non_alpha_words", f"alphabetic words {alpha:.3f} < {rules.min_alpha_word_fraction}")
    if rules.min_stop_words is not None:
        stops = sum(1 for t in toks if t.lower() in STOP_WORDS)
        if stops < rules.min_stop_words:
            return Removal("few_stop_words", f"{stops} < {rules.min_stop_words}")

    non_space = sum(1 for c in text if not c.isspace())
    digits = sum(1 for c in text if c.isdigit())
    if non_space and _over(digits / non_space, rules.max_digit_fraction):
        return Removal("digits", f"digit fraction {digits / non_space:.3f} > {rules.max_digit_fraction}")

    doc_lines = lines(text)
    if doc_lines:
        bullets = sum(1 for line in doc_lines if line.startswith(_BULLETS)) / len(doc_lines)
        if _over(bullets, rules.max_bullet_line_fraction):
            return Removal("bullet_lines", f"{bullets:.3f} > {rules.max_bullet_line_fraction}")
        ellipsis = sum(1 for line in doc_lines if line.endswith(("...", "…"))) / len(doc_lines)
        if _over(ellipsis, rules.max_ellipsis_line_fraction):
            return Removal("ellipsis_lines", f"{ellipsis:.3f} > {rules.max_ellipsis_line_fraction}")
        short = sum(1 for line in doc_lines if len(line) < 30) / len(doc_lines)
        if _over(short, rules.max_short_line_fraction):
            return Removal("short_lines", f"{short:.3f} > {rules.max_short_line_fraction}")

    return repetition_removal(doc_lines, paragraphs(text), toks, rules)
