"""MinHash signatures, compiled: equal to datasketch's, 40-50x faster on ~400-character documents.

A signature value k of a document is `min over shingles s of (a_k * fmix32(xxh32(s)) + b_k)
mod 2^32`: exactly datasketch's `MinHash(num_perm, seed, hashfunc=xxh32)` with its default
"affine32" permutation scheme, and `tests/lib/data/dedup/test_minhash.py` checks that the two
agree value for value. We compute it in one compiled pass over a batch of documents
(normalize -> word n-grams -> xxh32 -> permutations -> min) instead of one Python call per
shingle, which is what makes datasketch too slow for corpora.

Shingles are `ngram` consecutive tokens (`domainllm.data.hashing.tokenize`: NFKC,
lower-case, punctuation and symbols separate, CJK characters one token each) joined by one
space; a document with fewer tokens is one shingle; a document with no tokens has no
signature (it can only be an exact duplicate).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numba
import numpy as np

from domainllm.data.hashing import M32 as _M32
from domainllm.data.hashing import fmix32 as _fmix32
from domainllm.data.hashing import pack_texts as _pack
from domainllm.data.hashing import tokenize, tokens, xxh32

EMPTY = np.uint32(0xFFFFFFFF)
"""Every value of a document with no shingles."""


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) arrays of datasketch's affine32 scheme for this num_perm and seed."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@numba.njit(inline="always")
def _permute_min(h, a64, b64, sig):
    for k in range(a64.shape[0]):
        v = (a64[k] * h + b64[k]) & _M32
        if v < sig[k]:
            sig[k] = v


@numba.njit(cache=True, nogil=True)
def _signatures(data, offsets, ngram, a, b, out):  # pragma: no cover - compiled
    """Per document: its tokens (`tokenize`), then each run of `ngram` tokens hashed as the
    bytes that span them. Memory: 18 bytes a byte of the longest document (not per document)."""
    a64 = a.astype(np.uint64)
    b64 = b.astype(np.uint64)
    norm = np.empty(0, dtype=np.uint8)
    starts = np.empty(0, dtype=np.int64)
    nshingles = np.zeros(offsets.shape[0] - 1, dtype=np.int64)
    for d in range(offsets.shape[0] - 1):
        lo, hi = offsets[d], offsets[d + 1]
        if norm.shape[0] < 2 * (hi - lo) + 1:  # what `tokenize` may write
            norm = np.empty(max(2 * (hi - lo) + 1, 2 * norm.shape[0]), dtype=np.uint8)
            starts = np.empty(norm.shape[0], dtype=np.int64)
        sig = out[d]
        for k in range(sig.shape[0]):
            sig[k] = EMPTY
        n, count = tokenize(data, lo, hi, norm, starts)
        if count >= ngram:
            for j in range(ngram - 1, count):
                end = starts[j + 1] - 1 if j + 1 < count else n
                _permute_min(_fmix32(xxh32(norm, starts[j - ngram + 1], end)), a64, b64, sig)
            nshingles[d] = count - ngram + 1
        elif count > 0:  # a short document is one shingle
            _permute_min(_fmix32(xxh32(norm, 0, n)), a64, b64, sig)
            nshingles[d] = 1
    return nshingles


def signatures(
    texts: Sequence[str], a: np.ndarray, b: np.ndarray, ngram: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint32[len(texts), num_perm], shingle counts int64[len(texts)])."""
    data, offsets = _pack(texts)
    out = np.empty((len(texts), a.shape[0]), dtype=np.uint32)
    counts = _signatures(data, offsets, ngram, a, b, out)
    return out, counts


def shingles(text: str, ngram: int = 5) -> list[bytes]:
    """The shingles `signatures` hashes, in plain Python: the reference for tests and for
    exact Jaccard verification of candidate pairs."""
    words = tokens(text)
    if not words:
        return []
    if len(words) < ngram:
        return [b" ".join(words)]
    return [b" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]


@cache
def band_params(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive + false negative probability
    at `threshold`: datasketch's optimizer (`datasketch.lsh._optimal_param`, same search, same
    tie-break), with its `scipy.integrate.quad` replaced by 64-point Gauss-Legendre quadrature
    over every (bands, rows) at once. Importing scipy.integrate cost the dedup CLI 1.3 s of
    its start-up; `test_minhash.py` checks the two pick the same pair."""
    nodes, weights = np.polynomial.legendre.leggauss(64)
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    b = np.array([p[0] for p in pairs], dtype=np.float64)[:, None]
    r = np.array([p[1] for p in pairs], dtype=np.float64)[:, None]

    def area(lo: float, hi: float, positive: bool) -> np.ndarray:
        s = (hi - lo) / 2 * nodes[None, :] + (hi + lo) / 2
        candidate = 1 - (1 - s**r) ** b
        return ((candidate if positive else 1 - candidate) * weights[None, :]).sum(axis=1) * (hi - lo) / 2

    error = area(0.0, threshold, True) * fp_weight + area(threshold, 1.0, False) * fn_weight
    return pairs[int(np.argmin(error))]


@numba.njit(cache=True, nogil=True)
def _band_hashes(sigs, bands, rows, out):  # pragma: no cover - compiled
    for d in range(sigs.shape[0]):
        for band in range(bands):
            h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(band)
            for r in range(rows):
                h ^= np.uint64(sigs[d, band * rows + r])
                h *= np.uint64(0xFF51AFD7ED558CCD)
                h ^= h >> np.uint64(33)
            h *= np.uint64(0xC4CEB9FE1A85EC53)
            h ^= h >> np.uint64(33)
            out[d, band] = h


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64[docs, bands]: one 64-bit key per LSH band (equal bands -> equal keys)."""
    out = np.empty((sigs.shape[0], bands), dtype=np.uint64)
    _band_hashes(sigs, bands, rows, out)
    return out
