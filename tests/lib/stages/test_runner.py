"""The stage contract through the real runner: manifest, no-op rerun, force, MLflow nesting."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pytest

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.runner import StageError, run_stage
from domainllm.tracking import (
    TAG_KIND,
    TAG_RUN_ID,
    TAG_STAGE,
    finish_pipeline_run,
    start_pipeline_run,
    tracking_uri,
)


def test_ingest_stage_publishes_manifest_and_tracks_in_mlflow(tiny_spec: Path, home: Path) -> None:
    spec = load_spec(tiny_spec)
    parent = start_pipeline_run(spec, "r1")
    outcome = run_stage(spec, "ingest", "r1")
    m = outcome.manifest
    assert not outcome.skipped
    stage_dir = home / "artifacts" / "r1" / "ingest"
    assert json.loads((stage_dir / "_manifest.json").read_text())["fingerprint"] == m.fingerprint
    listed = {o.path for o in m.outputs}
    assert {"part-00000.parquet", "report.json", "report.png", "quarantine/part-00000.parquet"} <= listed
    assert sum(o.records or 0 for o in m.outputs if not o.path.startswith("quarantine")) == m.counts["records_out"]
    assert m.counts["quarantined"] == 3 and m.counts["records_out"] > 20
    assert set(m.inputs) == {"source:perl-code", "source:perl-synopses", "source:python-stdlib"}
    assert m.code_version and m.spec_digest and m.mlflow_run_id

    mlflow.set_tracking_uri(tracking_uri(spec))
    run = mlflow.get_run(m.mlflow_run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags[TAG_STAGE] == "ingest" and run.data.tags[TAG_RUN_ID] == "r1"
    assert run.data.metrics["count.quarantined"] == 3.0
    assert run.data.params["stage.ingest.shard_max_records"] == "200"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(m.mlflow_run_id)}
    assert {"manifest.json", "report.json", "report.png"} <= artifacts

    finish_pipeline_run(spec, "r1", "FINISHED")
    assert mlflow.get_run(parent).info.status == "FINISHED"
    assert mlflow.get_run(parent).data.tags[TAG_KIND] == "pipeline"


def test_rerun_is_a_fast_noop_and_force_or_changed_input_reruns(tiny_spec: Path, home: Path, corpora: Path) -> None:
    spec = load_spec(tiny_spec)
    first = run_stage(spec, "ingest", "r2").manifest
    t0 = time.monotonic()
    again = run_stage(spec, "ingest", "r2")
    assert again.skipped and again.manifest == first
    assert time.monotonic() - t0 < 5

    forced = run_stage(spec, "ingest", "r2", force=True)
    assert not forced.skipped and forced.manifest.mlflow_run_id != first.mlflow_run_id
    assert [o.sha256 for o in forced.manifest.outputs] == [o.sha256 for o in first.outputs]

    # A deleted output means the stage is no longer finished.
    (home / "artifacts" / "r2" / "ingest" / "report.json").unlink()
    assert not run_stage(spec, "ingest", "r2").skipped


def test_changed_config_changes_the_fingerprint(tiny_spec: Path, tmp_path: Path) -> None:
    import yaml

    spec = load_spec(tiny_spec)
    first = run_stage(spec, "ingest", "r3").manifest
    doc = yaml.safe_load(tiny_spec.read_text())
    doc["data"]["ingest"]["shard_max_records"] = 100
    tiny_spec.write_text(yaml.safe_dump(doc))
    second = run_stage(load_spec(tiny_spec), "ingest", "r3")
    assert not second.skipped and second.manifest.fingerprint != first.fingerprint


def test_missing_upstream_stage_says_what_to_run(tiny_spec: Path) -> None:
    with pytest.raises(StageError, match=r"needs the output of stage 'ingest'.*domainllm stage run ingest"):
        run_stage(load_spec(tiny_spec), "base_model", "r4")


def test_metric_names_are_made_mlflow_safe() -> None:
    from domainllm.stages.runner import metric_name

    assert metric_name("count.samples.alias:production@1") == "count.samples.alias:production_1"
    assert metric_name("candidate_rag.qa.domain.f1") == "candidate_rag.qa.domain.f1"
    assert metric_name("a+b=c") == "a_b_c"


def test_a_stage_whose_tracking_fails_publishes_nothing(tiny_spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow refusing the results fails the stage before its output is published: a retry
    reruns it instead of finding output that looks complete."""
    import mlflow

    spec = load_spec(tiny_spec)

    def refuse(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("the tracking server said no")

    monkeypatch.setattr(mlflow, "log_metrics", refuse)
    with pytest.raises(mlflow.exceptions.MlflowException, match="said no"):
        run_stage(spec, "ingest", "t")
    assert RunLayout(spec.artifact_root, "t").read_manifest("ingest") is None
    monkeypatch.undo()
    assert not run_stage(spec, "ingest", "t").skipped
