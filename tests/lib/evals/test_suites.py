"""Suites as per-item rows: one row per window / problem x k / question, named metrics, the
decoding recorded; built-in sets resolve and unknown ones are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainllm.evals.generate import TransformersGenerator
from domainllm.evals.sandbox import Limits
from domainllm.evals.suites import choice_rows, code_rows, load_choice_items, load_problems, perplexity_rows
from domainllm.spec.evals import Decoding
from tests.lib.train.test_lora import tiny_base

pytestmark = pytest.mark.slow


def test_rows_for_each_suite(tmp_path: Path) -> None:
    tiny_base(tmp_path / "m")
    model = str(tmp_path / "m")
    problems = load_problems("builtin:perl-problems")
    rows = code_rows("candidate", TransformersGenerator(model), "perl", problems, Decoding(temperature=0.8, n=2, max_new_tokens=16), (1, 2),
                     Limits(wall_s=5))  # fmt: skip
    assert len(rows) == 2 * len(problems) and {r["metric"] for r in rows} == {"code.perl.pass_at_1", "code.perl.pass_at_2"}
    assert all(r["score"] == 0.0 and json.loads(r["detail"])["samples"] == 2 for r in rows)
    assert {json.loads(r["detail"])["backend"] for r in rows} == {"transformers"}
    assert json.loads(rows[0]["detail"])["decoding"]["temperature"] == 0.8  # recorded with every result  # an untrained model solves nothing
    items = load_choice_items("builtin:general-mc")
    crows = choice_rows("base", model, "general", items, "letter")
    assert len(crows) == 24 and {r["score"] for r in crows} <= {0.0, 1.0} and crows[0]["metric"] == "choice.general.correct"
    prows = perplexity_rows("champion", model, [("domain", "sub hello { return 'world'; } " * 8)], seq_len=16, max_tokens=1000)
    assert prows and all(r["metric"] == "perplexity.domain.loss" and r["score"] > 0 for r in prows)


def test_unknown_builtin_set() -> None:
    with pytest.raises(FileNotFoundError, match="no built-in eval set 'nope'; shipped: humaneval, domain-questions, general-mc, perl-problems"):
        load_problems("builtin:nope")
