"""Hashing primitives shared by dedup, decontamination and grouping (compiled with numba).

Texts are hashed as UTF-8 after lower-casing (Python's, so Unicode-aware); in the byte
stream ASCII punctuation is deleted, ASCII whitespace separates words, and every other byte
(letters, digits, UTF-8 sequences) belongs to a word.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

# Constants typed uint64: numba turns uint64-with-int64 arithmetic into float64.
_P1, _P2, _P3, _P4, _P5 = (np.uint64(p) for p in (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1))
M32 = _M32 = np.uint64(0xFFFFFFFF)
_NEG_P1 = np.uint64((-0x9E3779B1) & 0xFFFFFFFF)
_P1P2 = np.uint64((0x9E3779B1 + 0x85EBCA77) & 0xFFFFFFFF)
_F1, _F2 = np.uint64(0x85EBCA6B), np.uint64(0xC2B2AE35)
_U8, _U11, _U13, _U15, _U16, _U17, _U24 = (np.uint64(v) for v in (8, 11, 13, 15, 16, 17, 24))

# 0 word byte, 1 separator, 2 deleted
WORD_CLASS = np.zeros(256, dtype=np.uint8)
for _c in b" \t\n\r\x0b\x0c":
    WORD_CLASS[_c] = 1
for _c in b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~":
    WORD_CLASS[_c] = 2


@numba.njit(inline="always")
def _rotl(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M32


@numba.njit(inline="always")
def _u32le(buf: np.ndarray, i: int) -> int:
    return np.uint64(buf[i]) | (np.uint64(buf[i + 1]) << _U8) | (np.uint64(buf[i + 2]) << _U16) | (
        np.uint64(buf[i + 3]) << _U24
    )


@numba.njit(cache=True)
def xxh32(buf, start, end, seed=0):
    """xxHash32 of buf[start:end], as the `xxhash` package computes it."""
    n = end - start
    i = start
    sd = np.uint64(seed) & _M32
    if n >= 16:
        v1 = (_P1P2 + sd) & _M32
        v2 = (_P2 + sd) & _M32
        v3 = sd
        v4 = (_NEG_P1 + sd) & _M32
        limit = end - 16
        while i <= limit:
            v1 = (_rotl((v1 + _u32le(buf, i) * _P2) & _M32, 13) * _P1) & _M32
            v2 = (_rotl((v2 + _u32le(buf, i + 4) * _P2) & _M32, 13) * _P1) & _M32
            v3 = (_rotl((v3 + _u32le(buf, i + 8) * _P2) & _M32, 13) * _P1) & _M32
            v4 = (_rotl((v4 + _u32le(buf, i + 12) * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M32
    else:
        h = (_P5 + sd) & _M32
    h = (h + np.uint64(n)) & _M32
    while i + 4 <= end:
        h = (_rotl((h + _u32le(buf, i) * _P3) & _M32, 17) * _P4) & _M32
        i += 4
    while i < end:
        h = (_rotl((h + np.uint64(buf[i]) * _P5) & _M32, 11) * _P1) & _M32
        i += 1
    h ^= h >> _U15
    h = (h * _P2) & _M32
    h ^= h >> _U13
    h = (h * _P3) & _M32
    h ^= h >> _U16
    return h


@numba.njit(inline="always")
def fmix32(h):
    h ^= h >> _U16
    h = (h * _F1) & _M32
    h ^= h >> _U13
    h = (h * _F2) & _M32
    h ^= h >> _U16
    return h



def pack_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [t.lower().encode("utf-8", "surrogatepass") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


