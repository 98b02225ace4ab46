"""A labelled near-duplicate benchmark: distinct documents plus near-exact copies.

Distinct documents are Zipf-distributed words from a fixed vocabulary with sentence
punctuation, and a share of them open with the same boilerplate paragraph (hard negatives:
related, not duplicates). Each duplicate is a copy of one distinct document with one to
three of the perturbations the dedup targets name: whitespace, case, punctuation noise,
<=1% word edits, a short prefix or suffix, <=5% truncation. Used by the tests (small) and by
bench/dedup_quality.py and bench/dedup_throughput.py (large); deterministic per seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_PUNCT = ".,;:!?-()\"'"
_PREFIXES = ["Posted by admin:", "UPDATE:", "From the archive -", "Re:", "Note:", "[repost]"]
_SUFFIXES = ["Read more.", "Share this.", "All rights reserved.", "(edited)", "Thanks!", "-- end --"]


@dataclass(frozen=True)
class Labelled:
    ids: list[str]
    texts: list[str]
    duplicate_of: dict[str, str]
    """Duplicate id -> the distinct document it was made from."""
    kinds: dict[str, str]
    """Duplicate id -> the perturbations applied, '+'-joined."""

    @property
    def distinct(self) -> set[str]:
        return set(self.ids) - set(self.duplicate_of)


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(_LETTERS) for _ in range(rng.randint(2, 10))))
    return sorted(words)


def _document(rng: random.Random, vocab: list[str], weights: list[float], n_words: int) -> str:
    words = rng.choices(vocab, weights=weights, k=n_words)
    out, sentence = [], 0
    for w in words:
        sentence += 1
        if sentence == 1:
            w = w.capitalize()
        if sentence > rng.randint(6, 18):
            w += rng.choice(".!?.")
            sentence = 0
        elif rng.random() < 0.06:
            w += ","
        out.append(w)
    return " ".join(out) + "."


def _whitespace(rng: random.Random, words: list[str]) -> list[str]:
    return [w + rng.choice(["", "", " ", "\n", "\t", "  \n"]) for w in words]


def _case(rng: random.Random, words: list[str]) -> list[str]:
    mode = rng.choice(["upper", "lower", "title", "random"])
    if mode == "upper":
        return [w.upper() for w in words]
    if mode == "lower":
        return [w.lower() for w in words]
    if mode == "title":
        return [w.title() for w in words]
    return [w.upper() if rng.random() < 0.1 else w for w in words]


def _punctuation(rng: random.Random, words: list[str]) -> list[str]:
    out = []
    for w in words:
        r = rng.random()
        if r < 0.08:
            w += rng.choice(_PUNCT)
        elif r < 0.12:
            w = w.rstrip(_PUNCT)
        out.append(w)
    return out


def _edits(rng: random.Random, words: list[str], vocab: list[str]) -> list[str]:
    words = list(words)
    for _ in range(max(1, len(words) // 100)):
        i = rng.randrange(len(words))
        op = rng.choice(["replace", "insert", "delete"])
        if op == "replace":
            words[i] = rng.choice(vocab)
        elif op == "insert":
            words.insert(i, rng.choice(vocab))
        elif len(words) > 1:
            del words[i]
    return words


def _affix(rng: random.Random, words: list[str]) -> list[str]:
    if rng.random() < 0.5:
        return rng.choice(_PREFIXES).split() + words
    return words + rng.choice(_SUFFIXES).split()


def _truncate(rng: random.Random, words: list[str]) -> list[str]:
    cut = rng.randint(1, max(1, int(len(words) * 0.05)))
    return words[:-cut] if rng.random() < 0.7 else words[cut:]


def make_benchmark(
    n_distinct: int, n_duplicates: int, *, seed: int = 0, min_words: int = 60, max_words: int = 400,
    vocab_size: int = 20_000, boilerplate_share: float = 0.1,
) -> Labelled:  # fmt: skip
    rng = random.Random(seed)
    vocab = _vocabulary(rng, vocab_size)
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]  # Zipf
    boilerplate = _document(rng, vocab, weights, 25)
    ids, texts = [], []
    for i in range(n_distinct):
        text = _document(rng, vocab, weights, rng.randint(min_words, max_words))
        if rng.random() < boilerplate_share:
            text = boilerplate + "\n\n" + text
        ids.append(f"doc-{i}")
        texts.append(text)
    perturbations = {
        "whitespace": lambda w: _whitespace(rng, w),
        "case": lambda w: _case(rng, w),
        "punctuation": lambda w: _punctuation(rng, w),
        "edits": lambda w: _edits(rng, w, vocab),
        "affix": lambda w: _affix(rng, w),
        "truncate": lambda w: _truncate(rng, w),
    }
    duplicate_of, kinds = {}, {}
    for j in range(n_duplicates):
        src = rng.randrange(n_distinct)
        chosen = rng.sample(sorted(perturbations), rng.randint(1, 3))
        words = texts[src].split(" ")
        for name in chosen:
            words = perturbations[name](words)
        dup_id = f"dup-{j}"
        ids.append(dup_id)
        texts.append(" ".join(words))
        duplicate_of[dup_id] = ids[src]
        kinds[dup_id] = "+".join(sorted(chosen))
    order = list(range(len(ids)))
    rng.shuffle(order)
    return Labelled([ids[i] for i in order], [texts[i] for i in order], duplicate_of, kinds)


def score(bench: Labelled, removed: set[str]) -> dict[str, float]:
    """Recall: duplicates removed, or (when the copy came first) their distinct source
    removed in their place, one per cluster. Distinct removal: distinct documents removed
    that have no duplicate in the set (so could not have been a cluster's kept copy)."""
    by_source: dict[str, list[str]] = {}
    for dup, src in bench.duplicate_of.items():
        by_source.setdefault(src, []).append(dup)
    found = 0
    for src, dups in by_source.items():
        members = [src, *dups]
        # a cluster of k copies is fully found when k-1 of them are removed
        found += min(len(dups), sum(m in removed for m in members))
    with_copies = set(by_source)
    lone = bench.distinct - with_copies
    return {
        "recall": found / max(len(bench.duplicate_of), 1),
        "distinct_removed_fraction": len(lone & removed) / max(len(lone), 1),
        "duplicates": len(bench.duplicate_of),
        "distinct": len(bench.distinct),
    }
