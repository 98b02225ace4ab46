"""The domain_llm DAG end to end on the embedded default: real Airflow, real MLflow,
real stage processes, through `airflow dags test`. (A run through the scheduler and API
server, the way the UI triggers it, is in test_data_flywheel_dag.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from domainllm.artifacts import RunLayout
from domainllm.evals.registry import champion
from domainllm.spec import load_spec
from domainllm.stages.names import DOMAIN_STAGES
from domainllm.tracking import TAG_KIND, TAG_STAGE, find_pipeline_run, tracking_uri
from tests.conftest import tiny_spec_doc, write_spec
from tests.e2e.conftest import airflow

pytestmark = pytest.mark.slow


def _stage_runs(spec, parent: str) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient()
    runs = client.search_runs([mlflow.get_experiment_by_name(spec.name).experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")  # fmt: skip
    return {r.data.tags[TAG_STAGE]: r for r in runs}


def test_dags_test_runs_every_stage_nested_under_one_parent(airflow_db, tiny_spec: Path) -> None:
    conf = json.dumps({"spec": str(tiny_spec), "run_id": "e2e"})
    proc = airflow("dags", "test", "domain_llm", "-c", conf)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    spec = load_spec(tiny_spec)
    layout = RunLayout(spec.artifact_root, "e2e")
    assert layout.read_manifest("ingest") is not None and layout.read_manifest("base_model") is not None
    assert (Path(layout.run_dir) / "spec.resolved.json").exists()

    mlflow.set_tracking_uri(tracking_uri(spec))
    parent = find_pipeline_run(spec, "e2e")
    assert parent is not None
    parent_run = mlflow.get_run(parent)
    assert parent_run.info.status == "FINISHED" and parent_run.data.tags[TAG_KIND] == "pipeline"
    children = _stage_runs(spec, parent)
    assert set(children) == set(DOMAIN_STAGES)
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert children["base_model"].data.metrics["heldout_loss_after"] < children["base_model"].data.metrics["heldout_loss_before"]
    # Stage output streamed into the task log, with a pointer to the data report.
    assert "stage ingest: done in" in proc.stdout + proc.stderr
    report = layout.read_manifest("data_report").info["report_html"]
    assert f"report: {report}" in proc.stdout + proc.stderr and Path(report).read_text().startswith("<!doctype html>")
    assert layout.read_manifest("decontaminate").counts["removed.eval_contamination"] >= 1
    gate = layout.read_manifest("gate").info
    assert gate["passed"] and gate["version"] == "1" and champion(spec).version == "1"

    # The next round trains a worse model (DPO at learning rate 1.0): only it and what follows
    # rerun, the gate rejects it, the DAG run fails there with the reasons, the champion stays.
    doc = yaml.safe_load(tiny_spec.read_text())
    doc["training"]["dpo"]["optim"] = {"learning_rate": 1.0, "warmup_ratio": 0.0}
    worse = write_spec(tiny_spec.parent / "worse.yaml", doc)
    proc = airflow("dags", "test", "domain_llm", "-c", json.dumps({"spec": str(worse), "run_id": "e2e"}))
    out = proc.stdout + proc.stderr
    assert "not promoted; the champion stays" in out and "is not promoted and the champion stays" in out, out[-4000:]
    assert "perplexity.domain.loss: candidate beats champion?" in out
    assert "stage cpt: up to date" in out and "stage dpo: done in" in out
    assert champion(spec).version == "1" and mlflow.get_run(find_pipeline_run(spec, "e2e")).info.status == "FAILED"
    rejected = mlflow.MlflowClient().search_runs([parent_run.info.experiment_id], filter_string="tags.`domainllm.gate` = 'failed'")
    assert len(rejected) == 1 and rejected[0].data.metrics["gate.passed"] == 0.0


def test_a_failing_stage_fails_the_run_and_leaves_no_finished_output(
    airflow_db, home: Path, corpora: Path, tmp_path: Path
) -> None:
    doc = tiny_spec_doc(corpora)
    doc["sources"][0]["path"] = str(tmp_path / "missing-corpus")
    spec_path = write_spec(tmp_path / "spec.yaml", doc)
    proc = airflow("dags", "test", "domain_llm", "-c", json.dumps({"spec": str(spec_path), "run_id": "e2e-fail"}))
    out = proc.stdout + proc.stderr
    assert "input path does not exist" in out and str(tmp_path / "missing-corpus") in out
    assert "stage ingest failed (exit code 2)" in out

    spec = load_spec(spec_path)
    assert RunLayout(spec.artifact_root, "e2e-fail").read_manifest("ingest") is None
    mlflow.set_tracking_uri(tracking_uri(spec))
    parent = find_pipeline_run(spec, "e2e-fail")
    assert mlflow.get_run(parent).info.status == "FAILED"
