"""`evals` settings: impossible combinations are refused at load time with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from domainllm.spec import SpecError, parse_spec
from domainllm.spec.evals import EvalConfig


def test_decoding_search_grid_points() -> None:
    cfg = EvalConfig.model_validate({"decoding_search": {"enabled": True, "grid": {"temperature": [0.5, 1.0], "n": [2, 4]}, "k": 2}})
    points = cfg.decoding_search.combinations(cfg.code.decoding)
    assert [(p.n, p.temperature) for p in points] == [(2, 0.5), (2, 1.0), (4, 0.5), (4, 1.0)]
    assert all(p.stop == cfg.code.decoding.stop for p in points)  # the rest stays the suite's


@pytest.mark.parametrize(("search", "why"), [
    ({"grid": {"temp": [1.0]}}, r"unknown field\(s\) \['temp'\]"),
    ({"grid": {"temperature": [0.1 * i for i in range(1, 9)], "top_p": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.95, 0.85, 0.75]}}, "72 combinations; at most 64"),
    ({"grid": {"temperature": [1.0], "n": [1]}, "k": 2}, "pass@2 needs n >= 2"),
    ({"grid": {"temperature": [0.0], "n": [2]}}, "n = 2 with temperature 0"),
    ({"grid": {"top_p": [1.5]}}, r"grid point \{'top_p': 1.5\}"),
    ({"suite": "judge"}, "evals.judge.endpoint is not set"),
])  # fmt: skip
def test_bad_searches_are_refused(search: dict, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        EvalConfig.model_validate({"decoding_search": {"enabled": True, **search}})


def test_judge_answers_once_per_prompt() -> None:
    with pytest.raises(ValidationError, match="evals.judge.decoding.n must be 1"):
        EvalConfig.model_validate({"judge": {"endpoint": "http://x/v1", "decoding": {"n": 2, "temperature": 1.0}}})
    assert not EvalConfig().judge.enabled and EvalConfig.model_validate({"judge": {"endpoint": "http://x/v1"}}).judge.enabled


@pytest.mark.parametrize(("url", "why"), [("https://user:secret@judge.example/v1", "must not carry credentials"),
                                          ("https://judge.example/v1?api_key=secret", "must not carry credentials"),
                                          ("judge.example/v1", "must be an http")])  # fmt: skip
def test_judge_endpoint_is_a_url_without_credentials(url: str, why: str, tmp_path: Path) -> None:
    doc = {"name": "x", "artifact_root": str(tmp_path), "sources": [{"name": "s", "path": str(tmp_path), "domain": "domain"}],
           "base_model": {"path": str(tmp_path)}, "evals": {"judge": {"endpoint": url}}}  # fmt: skip
    with pytest.raises(SpecError, match=why) as err:
        parse_spec(doc, base_dir=tmp_path)
    assert "secret" not in str(err.value)
