"""64-bit hashes of word n-grams, compiled, with the same normalization as dedup shingles
(lower-case, ASCII punctuation deleted, whitespace collapsed)."""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from domainllm.data.hashing import WORD_CLASS, pack_texts, xxh32


@numba.njit(cache=True, nogil=True)
def _ngram_hashes(data, offsets, cls, ns, whole_max):  # pragma: no cover - compiled
    """For each document: the hashes of its n-grams for every n in `ns`; a document with
    fewer words than every n, and at most `whole_max` words, is hashed whole."""
    total = 0
    for d in range(offsets.shape[0] - 1):
        total += (offsets[d + 1] - offsets[d] + 1) * ns.shape[0]
    out = np.empty(total, dtype=np.uint64)
    doc_end = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    words_per_doc = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    norm = np.empty(0, dtype=np.uint8)
    maxn = ns.max()
    ring = np.zeros(maxn, dtype=np.int64)
    k = 0
    for d in range(offsets.shape[0] - 1):
        lo, hi = offsets[d], offsets[d + 1]
        if norm.shape[0] < hi - lo:
            norm = np.empty(max(hi - lo, 2 * norm.shape[0]), dtype=np.uint8)
        n = 0
        words = 0
        in_word = False
        for i in range(lo, hi + 1):
            c = cls[data[i]] if i < hi else 1
            if c == 0:
                if not in_word:
                    if words > 0:
                        norm[n] = 32
                        n += 1
                    ring[words % maxn] = n
                    in_word = True
                norm[n] = data[i]
                n += 1
            elif c == 1 and in_word:
                in_word = False
                words += 1
                for j in range(ns.shape[0]):
                    g = ns[j]
                    if words >= g:
                        s = ring[(words - g) % maxn]
                        out[k] = (np.uint64(xxh32(norm, s, n, 0)) << np.uint64(32)) | np.uint64(xxh32(norm, s, n, 1))
                        k += 1
        if 0 < words <= whole_max and words < ns.min():
            out[k] = (np.uint64(xxh32(norm, 0, n, 0)) << np.uint64(32)) | np.uint64(xxh32(norm, 0, n, 1))
            k += 1
        doc_end[d] = k
        words_per_doc[d] = words
    return out[:k], doc_end, words_per_doc


def ngram_hashes(texts: Sequence[str], ns: Sequence[int], whole_max: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, end offset of each text's hashes, words per text). With `whole_max`, a
    text shorter than every n (and of at most `whole_max` words) is hashed whole."""
    data, offsets = pack_texts(texts)
    return _ngram_hashes(data, offsets, WORD_CLASS, np.asarray(sorted(set(ns)), dtype=np.int64), whole_max)
