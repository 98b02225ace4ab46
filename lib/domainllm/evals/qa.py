"""Reference answers without a judge: the token F1 of an answer against its reference
(SQuAD's measure: lower-cased, punctuation and articles dropped, word multiset overlap)."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[a-z0-9_$@%:]+")
_ARTICLES = {"a", "an", "the"}


def tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _ARTICLES]


def token_f1(answer: str, reference: str) -> float:
    a, r = tokens(answer), tokens(reference)
    if not a or not r:
        return float(a == r)
    common = sum((Counter(a) & Counter(r)).values())
    if not common:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)
