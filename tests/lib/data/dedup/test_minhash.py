"""Our compiled MinHash equals datasketch's (affine32 scheme, xxh32 token hash) value for value."""

from __future__ import annotations

import numpy as np
import pytest
import xxhash
from datasketch import MinHash

from domainllm.data.dedup.minhash import (
    EMPTY,
    band_hashes,
    band_params,
    permutations,
    shingles,
    signatures,
    xxh32,
)

TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again, until the dog gives up.",
    "Ünïcode café: naïve façade — 日本語のテキスト and Ελληνικά words mixed in, CASE folded!",
    "sub parse { my ($self, %args) = @_; return $self->{tree} //= Parser->new(%args); }",
    "four words only here",
    "x",
    "",
    "!!! ... ??? ---",
    "   \n\t  ",
    "word " * 2000,
]


@pytest.mark.parametrize("length", [0, 1, 3, 4, 7, 15, 16, 17, 31, 32, 33, 100])
def test_xxh32_matches_the_xxhash_package(length: int) -> None:
    data = np.frombuffer(bytes(range(7, 7 + length)), dtype=np.uint8)
    assert xxh32(data, 0, length) == xxhash.xxh32_intdigest(data.tobytes())


@pytest.mark.parametrize("num_perm,seed,ngram", [(128, 1, 5), (64, 42, 3), (256, 7, 1)])
def test_signatures_equal_datasketch(num_perm: int, seed: int, ngram: int) -> None:
    a, b = permutations(num_perm, seed)
    ours, counts = signatures(TEXTS, a, b, ngram)
    for text, sig, count in zip(TEXTS, ours, counts, strict=True):
        tokens = shingles(text, ngram)
        assert count == len(tokens)
        ref = MinHash(num_perm=num_perm, seed=seed, hashfunc=xxhash.xxh32_intdigest)
        ref.update_batch(tokens)
        assert ref.scheme == "affine32"
        np.testing.assert_array_equal(sig, ref.hashvalues, err_msg=repr(text[:40]))


def test_normalization_ignores_case_punctuation_and_whitespace() -> None:
    a, b = permutations(128, 1)
    sigs, _ = signatures(["Hello, World!  How are   you today?", "hello world how are you today", "HELLO\nWORLD\tHOW ARE YOU TODAY"], a, b)
    assert (sigs[0] == sigs[1]).all() and (sigs[1] == sigs[2]).all()


def test_documents_without_words_have_no_signature() -> None:
    a, b = permutations(32, 1)
    sigs, counts = signatures(["", "?!", " \n "], a, b)
    assert counts.tolist() == [0, 0, 0] and (sigs == EMPTY).all()


def test_band_parameters_and_keys() -> None:
    bands, rows = band_params(0.8, 128, 0.1, 0.9)
    assert bands * rows <= 128 and bands > 1
    a, b = permutations(128, 1)
    sigs, _ = signatures(["one two three four five six", "one two three four five six", "completely other words in here"], a, b)
    keys = band_hashes(sigs, bands, rows)
    assert keys.shape == (3, bands) and keys.dtype == np.uint64
    assert (keys[0] == keys[1]).all() and not (keys[0] == keys[2]).any()


@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_band_parameters_are_datasketchs(num_perm: int) -> None:
    from datasketch.lsh import _optimal_param

    for threshold in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        for fp, fn in ((0.5, 0.5), (0.05, 0.95), (0.1, 0.9), (0.3, 0.7)):
            assert band_params(threshold, num_perm, fp, fn) == _optimal_param(threshold, num_perm, fp, fn), (threshold, fp, fn)
