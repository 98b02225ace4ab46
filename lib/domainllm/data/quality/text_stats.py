"""Tokenization and counts shared by the quality rules."""

from __future__ import annotations

import re

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# A CJK character is a word by itself (no spaces between words); otherwise a word is a
# run of non-space characters.
_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def cjk_fraction(text: str) -> float:
    non_space = sum(1 for c in text if not c.isspace())
    return len(_CJK_CHAR.findall(text)) / non_space if non_space else 0.0


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
