"""The decoding grid search: off by default; on, it scores the candidate at the spec's
decoding and every grid point, and reports the best as a table, a plot and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.runner import run_stage
from tests.conftest import tiny_spec_doc, write_spec
from tests.lib.stages.test_cpt_stage import UPSTREAM

pytestmark = pytest.mark.slow


def test_search_reports_the_best_decoding(home: Path, corpora: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(corpora)
    spec = load_spec(write_spec(tmp_path / "off.yaml", doc))
    for stage in (*UPSTREAM, "cpt", "sft_data", "sft", "dpo_data", "dpo"):
        run_stage(spec, stage, "s")
    assert run_stage(spec, "decoding_search", "s").manifest.info == {"enabled": False}

    doc["evals"] = {"code": {"decoding": {"max_new_tokens": 24, "stop": ["\nsub "]}},
                    "decoding_search": {"enabled": True, "grid": {"temperature": [0.7, 1.2], "n": [2]}}}  # fmt: skip
    spec = load_spec(write_spec(tmp_path / "on.yaml", doc))
    m = run_stage(spec, "decoding_search", "s").manifest
    assert m.counts["trials"] == 3 and m.info["objective"] == "pass@1"
    assert m.info["best_trial"] in {"spec", "#1", "#2"} and m.metrics["search.best"] >= m.metrics["search.spec"]
    out = Path(RunLayout(spec.artifact_root, "s").stage_dir("decoding_search"))
    trials = pq.read_table(out / "search.parquet").to_pylist()
    assert [t["trial"] for t in trials] == ["spec", "#1", "#2"] and all(t["items"] == 8 for t in trials)
    assert [json.loads(t["decoding"])["temperature"] for t in trials] == [0.0, 0.7, 1.2]
    table = (out / "search.md").read_text()
    assert "| trial | temperature | n | pass@1 | items | seconds |" in table and "(best)" in table
    assert (out / "search.png").read_bytes().startswith(b"\x89PNG")
