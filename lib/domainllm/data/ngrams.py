"""64-bit hashes of token n-grams, compiled, with the same tokens as dedup shingles
(`domainllm.data.hashing.tokenize`)."""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from domainllm.data.hashing import pack_texts, tokenize, xxh32


@numba.njit(cache=True, nogil=True)
def _ngram_hashes(data, offsets, ns, whole_max):  # pragma: no cover - compiled
    """For each document: the hashes of its token n-grams for every n in `ns`; a document
    with fewer tokens than every n, and at most `whole_max` tokens, is hashed whole."""
    total = 0
    for d in range(offsets.shape[0] - 1):
        total += (offsets[d + 1] - offsets[d] + 1) * ns.shape[0]
    out = np.empty(total, dtype=np.uint64)
    doc_end = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    words_per_doc = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    norm = np.empty(0, dtype=np.uint8)
    starts = np.empty(0, dtype=np.int64)
    k = 0
    for d in range(offsets.shape[0] - 1):
        lo, hi = offsets[d], offsets[d + 1]
        if norm.shape[0] < 2 * (hi - lo) + 1:  # what `tokenize` may write
            norm = np.empty(max(2 * (hi - lo) + 1, 2 * norm.shape[0]), dtype=np.uint8)
            starts = np.empty(norm.shape[0], dtype=np.int64)
        n, words = tokenize(data, lo, hi, norm, starts)
        for j in range(words):
            end = starts[j + 1] - 1 if j + 1 < words else n
            for m in range(ns.shape[0]):
                g = ns[m]
                if j + 1 >= g:
                    s = starts[j - g + 1]
                    out[k] = (np.uint64(xxh32(norm, s, end, 0)) << np.uint64(32)) | np.uint64(xxh32(norm, s, end, 1))
                    k += 1
        if 0 < words <= whole_max and words < ns.min():
            out[k] = (np.uint64(xxh32(norm, 0, n, 0)) << np.uint64(32)) | np.uint64(xxh32(norm, 0, n, 1))
            k += 1
        doc_end[d] = k
        words_per_doc[d] = words
    return out[:k], doc_end, words_per_doc


def ngram_hashes(texts: Sequence[str], ns: Sequence[int], whole_max: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, end offset of each text's hashes, tokens per text). With `whole_max`, a
    text shorter than every n (and of at most `whole_max` tokens) is hashed whole."""
    data, offsets = pack_texts(texts)
    return _ngram_hashes(data, offsets, np.asarray(sorted(set(ns)), dtype=np.int64), whole_max)
