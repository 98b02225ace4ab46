from __future__ import annotations

import pytest

from domainllm.data.normalize import Normalizer


@pytest.mark.parametrize(
    ("raw", "want", "change"),
    [
        ("caf\u00c3\u00a9 na\u00c3\u00afve", "café naïve", "fixed_encoding"),  # UTF-8 read as Latin-1
        ("don\u00e2\u20ac\u2122t", "don\u2019t", "fixed_encoding"),  # UTF-8 read as Windows-1252
        ("\ufeffhello", "hello", "stripped_bom"),
        ("a\x00b\x07c", "abc", "removed_control_chars"),
        ("e\u0301", "\u00e9", "normalized_nfc"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate", "replaced_lone_surrogates"),
    ],
)
def test_repairs(raw: str, want: str, change: str) -> None:
    out = Normalizer()(raw)
    assert out.text == want and change in out.changes


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii\n\tindented\f",
        "café naïve 数据 — “quotes” stay curly, &amp; stays escaped, ﬁ and Ｆ stay",
        "my $s = 'Ã' . $x;  # one lone Latin-1 letter is not mojibake",
    ],
)
def test_clean_text_is_left_as_written(text: str) -> None:
    out = Normalizer()(text)
    assert out.text == text and out.changes == ()


def test_line_endings_become_lf() -> None:
    assert Normalizer()("a\r\nb\rc\n").text == "a\nb\nc\n"


def test_nfkc_and_no_normalization() -> None:
    assert Normalizer("NFKC")("Ｆｕｌｌ").text == "Full"
    assert Normalizer("none", fix_encoding=False)("e\u0301").text == "e\u0301"
