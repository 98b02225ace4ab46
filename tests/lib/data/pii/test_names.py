"""Person names: where the English NER model runs, which of its PERSON spans are kept, and
Chinese names starting at a surname."""

from __future__ import annotations

import pytest

from domainllm.data.pii.names import ChineseNames, EnglishNames, known_name, plausible, windows


def test_windows_are_only_around_capitalized_word_pairs() -> None:
    text = "x = compute(a, b)\nfor i in range(10): pass\nPatches by Mark Chen were merged.\nall lower case here\n"
    got = [text[lo:hi] for lo, hi in windows(text)]
    assert len(got) == 1 and "Mark Chen" in got[0]
    assert list(windows("Data::Dumper->new; $Foo::Bar; obj.Name(); use Test::More;")) == []
    assert list(windows("一段中文，没有英文名字。")) == []


@pytest.mark.parametrize("text,span,keep", [
    ("Reported by Jane Doe today", "Jane Doe", True),
    ("Philip A. Nelson wrote it", "Philip A. Nelson", True),
    ("the DejaVu Serif Bold face", "Serif Bold", False),  # no given name or surname in it
    ("see Debian Package docs", "Debian Package", False),
    ("call Foo::Jane Doe", "Jane Doe", False),  # code around it
    ("x = Jane Doe2", "Jane Doe2", False),  # digits
    ("BIG LETTERS", "BIG LETTERS", False),
])  # fmt: skip
def test_a_person_span_is_kept_when_it_reads_as_a_name_where_it_stands(text: str, span: str, keep: bool) -> None:
    start = text.index(span)
    assert plausible(text, start, start + len(span)) is keep


def test_known_names_come_from_the_lists() -> None:
    assert known_name("Jane Doe") and known_name("J. Bloggs") and not known_name("Serif Bold")


def test_english_names_with_the_shipped_model() -> None:
    finder = EnglishNames()
    texts = ["Yesterday Barack Obama met Angela Merkel in Berlin.", "use strict; my $Dumper = Data::Dumper->new;", ""]
    spans = finder.find(texts)
    assert [texts[0][s:e] for s, e in spans[0]] == ["Barack Obama", "Angela Merkel"]
    assert spans[1] == [] and spans[2] == []


def test_a_missing_model_says_how_to_get_one(tmp_path) -> None:
    with pytest.raises(OSError):
        EnglishNames(tmp_path / "no-model")


def test_chinese_names_start_at_a_surname_and_lose_their_title() -> None:
    finder = ChineseNames()
    for text, names in [("联系人：张伟，电话见下。", ["张伟"]), ("由李娜提交的补丁修复了这个问题。", ["李娜"]),
                        ("感谢黄俊杰先生的帮助", ["黄俊杰"]), ("这一段没有人名。", [])]:  # fmt: skip
        assert [text[s:e] for s, e in finder.find(text)] == names, text


def test_one_huge_line_of_names_and_emails_stays_linear() -> None:
    from domainllm.data.pii.names import cued_names

    text = "Jo Li <a@b.co> " * 20_000  # 300 kB on one line: each name looks back at most 200 characters
    assert len(cued_names(text)) == 20_000  # under a second; the quadratic version ran into the test timeout
