"""The pii stage in the pipeline: placeholders in the output, counts by type in the manifest
and MLflow, and no detected value anywhere but nowhere (logs, report, params, metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pyarrow.parquet as pq

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.runner import run_stage
from domainllm.tracking import tracking_uri
from tests.conftest import tiny_spec_doc, write_spec

SECRETS = ["Jane Roe", "jane.roe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "hunter2pw", "AKIAIOSFODNN7EXAMPLE"]


def test_pii_stage_scrubs_and_reports_counts_only(home: Path, corpora: Path, tmp_path: Path, capfd) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "n1", "text": (
        f"Ask {SECRETS[0]} at {SECRETS[1]} or {SECRETS[2]}; she paid with {SECRETS[3]}. The staging box uses "
        f"password: {SECRETS[4]} and key {SECRETS[5]} for the deploy job, version 1.2.3.")}) + "\n")  # fmt: skip
    doc = tiny_spec_doc(corpora)
    doc["sources"].append({"name": "notes", "path": str(notes), "domain": "domain", "lang": "en"})
    doc["data"] = {**doc["data"], "quality": {"skip_sources": ["notes"]}}
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in ("ingest", "quality", "dedup_signatures", "dedup_buckets", "dedup_clusters", "dedup"):
        run_stage(spec, stage, "p")
    m = run_stage(spec, "pii", "p").manifest

    out = Path(RunLayout(spec.artifact_root, "p").stage_dir("pii"))
    rows = {r["id"]: r for f in out.glob("part-*.parquet") for r in pq.read_table(f).to_pylist()}
    assert rows["n1"]["text"] == (
        "Ask <PERSON> at <EMAIL> or <PHONE>; she paid with <CREDIT_CARD>. The staging box uses "
        "password: <PASSWORD> and key <API_KEY> for the deploy job, version 1.2.3."
    )
    assert m.counts["docs_in"] == m.counts["docs_out"] == len(rows)
    assert m.counts["pii.EMAIL"] >= 1 and m.counts["pii.CREDIT_CARD"] == 1 and m.info["names_detected"] is True
    assert m.counts["pii.PERSON"] >= 1  # names: the shipped English model, on by default
    report = json.loads((out / "report.json").read_text())
    assert report["not_detected"] == [] and report["found"]["PERSON"] >= 1

    mlflow.set_tracking_uri(tracking_uri(spec))
    run = mlflow.get_run(m.mlflow_run_id)
    assert run.data.metrics["count.pii.PASSWORD"] >= 1
    logged = json.dumps(run.data.params) + json.dumps(run.data.metrics) + (out / "report.json").read_text()
    logged += (out / "_manifest.json").read_text() + "".join(capfd.readouterr())
    for secret in SECRETS:
        assert secret not in logged
