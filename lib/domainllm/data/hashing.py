"""Hashing primitives shared by dedup, decontamination and grouping (compiled with numba).

Texts are tokenized the same way everywhere (`tokenize`): markup stripped, NFKC-normalized
and lower-cased in Python (`fold`) (full-width letters become ASCII, case folds), then, over the UTF-8 bytes, a token is a
run of letters and digits (ASCII or any other script), `_` inside a word included
(`from_location` is one token, `__init__` is `init`); every other character — ASCII and
Unicode punctuation, symbols, spaces, U+FFFD — separates tokens; each CJK ideograph or kana
is a token of its own (Chinese and Japanese are written without spaces). So glued, swapped
or doubled punctuation, reflowed lines and full-width forms give the same tokens, and a
Chinese paragraph is shingled by characters instead of being one "word".
"""

from __future__ import annotations

import html
import re
import unicodedata
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

# ASCII byte classes: 0 word, 1 separator, 2 `_` (a word byte only between word bytes)
ASCII_CLASS = np.ones(128, dtype=np.uint8)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789":
    ASCII_CLASS[_c] = 0
ASCII_CLASS[ord("_")] = 2

SEPARATOR_RANGES = np.array([
    (0x80, 0xBF), (0xD7, 0xD7), (0xF7, 0xF7),  # Latin-1 punctuation, NBSP, signs; x and /
    (0x2000, 0x2BFF),  # spaces, dashes, quotes, bullets, arrows, math, box drawing, symbols
    (0x2E00, 0x2E7F), (0x3000, 0x303F),  # supplemental and CJK punctuation (、。「」)
    (0xFE10, 0xFE1F), (0xFE30, 0xFE6F), (0xFEFF, 0xFEFF),  # vertical and small forms, BOM
    (0xFF00, 0xFF0F), (0xFF1A, 0xFF20), (0xFF3B, 0xFF40), (0xFF5B, 0xFF65),  # full-width punctuation
    (0xFFF0, 0xFFFF),  # specials, U+FFFD included
    (0x1F000, 0x1FAFF),  # emoji and pictographs
], dtype=np.int64)  # fmt: skip
"""Non-ASCII code points that separate tokens."""

CHAR_TOKEN_RANGES = np.array([
    (0x2E80, 0x2FDF), (0x3040, 0x30FF), (0x3100, 0x312F), (0x3190, 0x31FF),  # radicals, kana, bopomofo
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F),  # CJK ideographs
], dtype=np.int64)  # fmt: skip
"""Code points that are a token each."""


@numba.njit(inline="always")
def _in(cp, ranges):
    for r in range(ranges.shape[0]):  # noqa: SIM110 - numba compiles no generator into any()
        if ranges[r, 0] <= cp <= ranges[r, 1]:
            return True
    return False


@numba.njit(inline="always")
def _char(data, i, hi):
    """(class, length) of the character at data[i]: 0 word, 1 separator, 2 `_`, 3 a token of
    its own. Invalid UTF-8 bytes are words (the texts come from Python str, so none occur)."""
    c = data[i]
    if c < 128:
        return ASCII_CLASS[c], 1
    if c >= 0xF0 and i + 3 < hi:
        cp = ((c & 0x07) << 18) | ((data[i + 1] & 0x3F) << 12) | ((data[i + 2] & 0x3F) << 6) | (data[i + 3] & 0x3F)
        n = 4
    elif c >= 0xE0 and i + 2 < hi:
        cp = ((c & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F)
        n = 3
    elif c >= 0xC0 and i + 1 < hi:
        cp = ((c & 0x1F) << 6) | (data[i + 1] & 0x3F)
        n = 2
    else:
        return 0, 1
    if _in(cp, SEPARATOR_RANGES):
        return 1, n
    if _in(cp, CHAR_TOKEN_RANGES):
        return 3, n
    return 0, n


@numba.njit(cache=True, nogil=True)
def tokenize(data, lo, hi, norm, starts):
    """Tokens of data[lo:hi] written to `norm`, one space between them; `starts[j]` is where
    token j begins (token j ends at `starts[j + 1] - 1`, the last at the returned length).
    `norm` and `starts` must hold 2 * (hi - lo) + 1 entries (a space goes between adjacent
    CJK characters: 4 bytes for 3). Returns (bytes written, tokens)."""
    n = 0
    count = 0
    in_word = False
    i = lo
    while i < hi:
        k, length = _char(data, i, hi)
        if k == 2:  # `_` joins word bytes on both sides, else it separates
            k = 1
            if in_word and i + 1 < hi:
                k2, _ = _char(data, i + 1, hi)
                if k2 == 0:
                    k = 0
        if k == 0 and in_word:
            for j in range(length):
                norm[n + j] = data[i + j]
            n += length
        elif k == 0 or k == 3:
            if count > 0:
                norm[n] = 32
                n += 1
            starts[count] = n
            count += 1
            for j in range(length):
                norm[n + j] = data[i + j]
            n += length
            in_word = k == 0
        else:
            in_word = False
        i += length
    return n, count


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



_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]{0,30}(?:\s[^<>]{0,300})?/?>")
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def fold(text: str) -> str:
    """What every text goes through before `tokenize`: HTML/XML tags out (`<br>`, `<p class=x>`
    separate like spaces), character references decoded (`&quot;`, `&#39;`), NFKC
    (full-width and compatibility forms to their plain equivalents; ASCII texts skip it),
    then Python's lower-casing. The same page scraped with or without its markup shingles
    alike."""
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text and _ENTITY.search(text):
        text = html.unescape(text)
    return (text if text.isascii() else unicodedata.normalize("NFKC", text)).lower()


def pack_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [fold(t).encode("utf-8", "surrogatepass") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def tokens(text: str) -> list[bytes]:
    """The tokens `tokenize` finds, in plain Python (the reference the tests hold the compiled
    kernels to)."""
    out: list[bytes] = []
    word: list[str] = []
    chars = fold(text)
    for i, ch in enumerate(chars):
        cp = ord(ch)
        if cp < 128:
            k = int(ASCII_CLASS[cp])
        else:
            k = 1 if any(lo <= cp <= hi for lo, hi in SEPARATOR_RANGES.tolist()) else (
                3 if any(lo <= cp <= hi for lo, hi in CHAR_TOKEN_RANGES.tolist()) else 0)  # fmt: skip
        if k == 2:
            nxt = chars[i + 1] if i + 1 < len(chars) else " "
            joins = bool(word) and (
                int(ASCII_CLASS[ord(nxt)]) == 0 if ord(nxt) < 128
                else not any(lo <= ord(nxt) <= hi for lo, hi in SEPARATOR_RANGES.tolist() + CHAR_TOKEN_RANGES.tolist()))  # fmt: skip
            k = 0 if joins else 1
        if k == 0:
            word.append(ch)
            continue
        if word:
            out.append("".join(word).encode("utf-8", "surrogatepass"))
            word = []
        if k == 3:
            out.append(ch.encode("utf-8", "surrogatepass"))
    if word:
        out.append("".join(word).encode("utf-8", "surrogatepass"))
    return out
