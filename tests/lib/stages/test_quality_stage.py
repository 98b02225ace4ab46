from __future__ import annotations

from pathlib import Path

import mlflow
import pyarrow.parquet as pq

from domainllm.spec import load_spec
from domainllm.stages.runner import run_stage
from domainllm.tracking import tracking_uri


def test_quality_stage_filters_the_ingested_documents(tiny_spec: Path, home: Path) -> None:
    spec = load_spec(tiny_spec)
    ingest = run_stage(spec, "ingest", "q").manifest
    m = run_stage(spec, "quality", "q").manifest
    assert m.inputs == {"stage:ingest": ingest.fingerprint}
    assert m.counts["docs_in"] == ingest.counts["records_out"]
    assert m.counts["docs_in"] == m.counts["docs_out"] + m.counts["removed"]
    assert m.counts["removed"] == sum(v for k, v in m.counts.items() if k.startswith("removed."))
    out = home / "artifacts" / "q" / "quality"
    kept = sum(pq.read_metadata(p).num_rows for p in out.glob("part-*.parquet"))
    removed = sum(pq.read_metadata(p).num_rows for p in (out / "removed").glob("part-*.parquet"))
    assert (kept, removed) == (m.counts["docs_out"], m.counts["removed"])
    mlflow.set_tracking_uri(tracking_uri(spec))
    assert {"report.json", "report.png", "languages.png"} <= {a.path for a in mlflow.MlflowClient().list_artifacts(m.mlflow_run_id)}
    langs = {k.split(".", 1)[1]: v for k, v in m.counts.items() if k.startswith("lang.")}
    assert sum(langs.values()) == m.counts["docs_in"] and langs.get("en", 0) > 0  # the tiny corpora: English docs and code
    assert run_stage(spec, "quality", "q").skipped
