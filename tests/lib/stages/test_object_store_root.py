"""The stage contract on an object store (fsspec's in-memory filesystem stands in for
s3:// or gs://: same non-local code paths — no rename, copy then manifest last)."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import mlflow
import pytest

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.runner import run_stage
from domainllm.tracking import tracking_uri
from tests.conftest import tiny_spec_doc, write_spec


@pytest.mark.slow
def test_ingest_and_base_model_publish_to_an_object_store(home: Path, corpora: Path, tmp_path: Path) -> None:
    root = f"memory://bucket-{uuid.uuid4().hex[:8]}/runs"
    mem = fsspec.filesystem("memory")
    # Sources can live in the store too.
    src = corpora / "perl-synopses.jsonl"
    mem.pipe_file(f"{root}/inputs/synopses.jsonl", src.read_bytes())
    doc = tiny_spec_doc(corpora, artifact_root=root)
    doc["sources"][1]["path"] = f"{root}/inputs/synopses.jsonl"
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    assert spec.artifact_root == root

    ingest = run_stage(spec, "ingest", "obj").manifest
    assert ingest.counts["quarantined"] == 3
    model = run_stage(spec, "base_model", "obj").manifest
    layout = RunLayout(root, "obj")
    assert layout.read_manifest("ingest") == ingest
    for stage, m in (("ingest", ingest), ("base_model", model)):
        for out in m.outputs:
            assert mem.size(f"{layout.stage_dir(stage)}/{out.path}") == out.bytes
    assert any(o.path == "model/model.safetensors" for o in model.outputs)
    model_path = model.info["model_path"]  # a URI downstream stages can open from anywhere
    assert model_path.startswith("memory://")
    assert fsspec.core.url_to_fs(model_path)[1] == fsspec.core.url_to_fs(f"{root}/obj/base_model/model")[1]
    assert not mem.exists(f"{layout.staging_root()}/ingest") and not mem.ls(layout.staging_root())

    assert run_stage(spec, "ingest", "obj").skipped
    mlflow.set_tracking_uri(tracking_uri(spec))
    assert "report.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(ingest.mlflow_run_id)}
