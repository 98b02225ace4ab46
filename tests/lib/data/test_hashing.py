"""The one tokenizer behind dedup, decontamination and grouping: the compiled kernel equals
its plain-Python reference on any text, and the noise a crawl adds does not change tokens."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from domainllm.data.hashing import pack_texts, tokenize, tokens


def compiled(text: str) -> list[bytes]:
    data, _ = pack_texts([text])
    norm = np.empty(2 * len(data) + 1, np.uint8)
    starts = np.empty(2 * len(data) + 1, np.int64)
    n, count = tokenize(data, 0, len(data), norm, starts)
    return [bytes(norm[starts[j] : starts[j + 1] - 1 if j + 1 < count else n]) for j in range(count)]


ALPHABET = st.sampled_from(list("aZ09_ .,;:!?()[]{}-'\"\t\n") + list("éÉßøİıΣσДж") + list("数据去重的。，、「」") +
                           list("ひカ한글") + ["\u00a0", "\u2014", "\u201c", "\ufffd", "\u3000", "Ｆ", "１", "（", "😀", "𠀀", "\u0301", "ﬁ"])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_the_compiled_tokenizer_equals_the_reference(text: str) -> None:
    assert compiled(text) == tokens(text)


def test_punctuation_glued_swapped_or_doubled_gives_the_same_tokens() -> None:
    same = ["Distribution!from_location(location;", "Distribution .from_location(location,", "distribution  FROM_LOCATION location"]
    assert {tuple(tokens(t)) for t in same} == {(b"distribution", b"from_location", b"location")}
    assert tokens("__init__(self, a_, _b)") == [b"init", b"self", b"a", b"b"]  # `_` joins only inside a word


def test_reflow_full_width_and_unicode_punctuation_do_not_change_tokens() -> None:
    a = "The “quick” brown fox —\njumps over\u00a0the lazy dog…"
    b = 'The "quick" brown\r\nfox - jumps   over the lazy dog...'
    assert tokens(a) == tokens(b) == [b"the", b"quick", b"brown", b"fox", b"jumps", b"over", b"the", b"lazy", b"dog"]
    assert tokens("ＡＢＣ１２３（ｘ）") == tokens("abc123(x)") == [b"abc123", b"x"]  # NFKC


def test_each_cjk_character_is_a_token_and_cjk_punctuation_separates() -> None:
    assert tokens("数据去重，很重要。") == [c.encode() for c in "数据去重很重要"]
    assert tokens("数据 去重 , 很重要 .") == tokens("数据去重，很重要。")  # spaces and half-width punctuation
    assert tokens("カタカナ和ひらがな") == [c.encode() for c in "カタカナ和ひらがな"]
    assert tokens("한국어 문장") == ["한국어".encode(), "문장".encode()]  # Korean separates words with spaces


def test_markup_and_character_references_do_not_change_tokens() -> None:
    plain = 'He said "stop" & left.\nNext line'
    marked = '<p class="x">He said &quot;stop&quot; &amp; left.<br>\nNext <b>line</b></p>'
    assert tokens(marked) == tokens(plain) == [b"he", b"said", b"stop", b"left", b"next", b"line"]
    assert tokens("std::vector<int> v; if (a < b && c > d)") == [b"std", b"vector", b"v", b"if", b"a", b"b", b"c", b"d"]
