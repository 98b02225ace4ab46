"""Decontamination: 13-gram overlap, short items matched whole, per-set counts, bad eval sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainllm.data.decontam import Decontaminator
from domainllm.data.records import InputError
from domainllm.spec.decontam import DecontamConfig

QUESTION = ("Which Perl built-in returns the number of elements when an array is evaluated in scalar "
            "context, and how does it differ from the last index?")  # fmt: skip
SHORT = "What does the chomp function remove?"  # 6 words
MEDIUM = "Explain what local does to a package variable in Perl"  # 10 words


def eval_file(tmp_path: Path, name: str, items: list[dict]) -> Path:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def decon(tmp_path: Path, **kw) -> Decontaminator:
    qa = eval_file(tmp_path, "qa", [{"question": QUESTION, "answer": "scalar(@a)", "id": 7}, {"question": SHORT},
                                    {"question": MEDIUM}])  # fmt: skip
    code = eval_file(tmp_path, "code", [{"prompt": "sub add { my ($x, $y) = @_; return $x + $y; } # add two numbers and "
                                                   "return the sum of both arguments"}])  # fmt: skip
    cfg = DecontamConfig.model_validate({"eval_sets": [{"name": "perl-qa", "path": str(qa)},
                                                       {"name": "perl-code", "path": str(code), "fields": ["prompt"]}],
                                         **kw})  # fmt: skip
    return Decontaminator(cfg)


def reasons(d: Decontaminator, texts: list[str]) -> list[str | None]:
    return [v.detail if v else None for v in d.batch([{"text": t, "source": "s"} for t in texts])]


def test_overlap_removes_and_names_the_set(tmp_path: Path) -> None:
    d = decon(tmp_path)
    leaked = "Forum post. " + QUESTION.upper().replace(",", " ;") + " Answer: use scalar."
    partial = "Which Perl built-in returns the number of elements is a common question."  # 12 words shared
    medium_leak = "Homework: explain what LOCAL does to a package variable in Perl, please."
    code_leak = "my code: sub add { my ($x, $y) = @_; return $x + $y; } # add two numbers and return the sum"
    out = reasons(d, [leaked, partial, medium_leak, code_leak, "What does the chomp function remove? Newlines."])
    assert out[0] is not None and out[0].endswith("eval set perl-qa")
    assert out[1] is None  # fewer than 13 shared words
    assert out[2] == "1 n-grams shared with eval set perl-qa"  # a 10-word item matched whole
    assert out[3] is not None and out[3].endswith("eval set perl-code")
    assert out[4] is None  # the 6-word item is below min_item_words and not matched
    assert d.counts() == {"contaminated.perl-qa": 2, "contaminated.perl-code": 1}
    assert d.index.counts == {"eval.perl-qa.items": 3, "eval.perl-qa.too_short": 1, "eval.perl-code.items": 1,
                              "eval.perl-code.too_short": 0}  # fmt: skip


def test_min_hits_and_skip_sources(tmp_path: Path) -> None:
    d = decon(tmp_path, min_hits=5)
    one_gram_hit = " ".join(QUESTION.split()[:13]) + " and then something else entirely different here"
    assert reasons(d, [one_gram_hit, QUESTION]) == [None, "14 n-grams shared with eval set perl-qa"]  # 26 tokens: `built-in` is two
    d = decon(tmp_path, skip_sources=("s",))
    assert reasons(d, [QUESTION]) == [None]


def test_bad_eval_sets_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="eval set 'nope': .* does not exist"):
        Decontaminator(DecontamConfig.model_validate({"eval_sets": [{"name": "nope", "path": str(tmp_path / "missing.jsonl")}]}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "fine"}\n{broken\n')
    with pytest.raises(InputError, match="bad.jsonl line 2 is not JSON"):
        Decontaminator(DecontamConfig.model_validate({"eval_sets": [{"name": "bad", "path": str(bad)}]}))
    with pytest.raises(ValueError, match="duplicate names"):
        DecontamConfig.model_validate({"eval_sets": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]})
