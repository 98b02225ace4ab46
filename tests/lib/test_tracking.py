from __future__ import annotations

from pathlib import Path

from domainllm.spec import load_spec
from domainllm.tracking import flatten_params, tracking_uri
from tests.conftest import tiny_spec_doc, write_spec


def test_tracking_uri_precedence(home: Path, tmp_path: Path, monkeypatch) -> None:
    spec = load_spec(write_spec(tmp_path / "a.yaml", tiny_spec_doc(tmp_path)))
    assert tracking_uri(spec) == f"sqlite:///{home}/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri(spec) == "http://mlflow.internal:5000"
    pinned = load_spec(write_spec(tmp_path / "b.yaml", tiny_spec_doc(tmp_path, tracking={"uri": "sqlite:////x.db"})))
    assert tracking_uri(pinned) == "sqlite:////x.db"


def test_params_are_flattened_and_credentials_redacted() -> None:
    flat = flatten_params({"src": {"path": "s3://AKIAEXAMPLE:hunter2@minio:9000/bucket/x", "n": 3}, "long": "y" * 9000})
    assert flat["src.path"] == "s3://***@minio:9000/bucket/x"
    assert flat["src.n"] == "3"
    assert len(flat["long"]) == 6000
