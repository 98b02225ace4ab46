"""MLflow: one parent run per pipeline run, one nested run per stage.

Runs are found by tags, so any process (a local child, a pod on another machine) that
knows the pipeline run id attaches its stage run to the right parent.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from domainllm.env import apply_offline_defaults, home
from domainllm.spec import Spec

log = logging.getLogger(__name__)

TAG_RUN_ID = "domainllm.run_id"
TAG_KIND = "domainllm.kind"
TAG_STAGE = "domainllm.stage"
_PARAM_MAX = 6000


def tracking_uri(spec: Spec) -> str:
    if spec.tracking.uri:
        return spec.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = home() / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def _default_artifact_location(uri: str) -> str | None:
    """With our default SQLite store, keep artifacts beside it (MLflow would otherwise use
    ./mlruns in whatever the current directory is)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()
    return None


def experiment_id(spec: Spec) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    apply_offline_defaults()
    uri = tracking_uri(spec)
    mlflow.set_tracking_uri(uri)
    name = spec.tracking.experiment or spec.name
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=_default_artifact_location(uri))
    except MlflowException:  # created concurrently by another stage process
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def find_pipeline_run(spec: Spec, run_id: str) -> str | None:
    import mlflow

    exp = experiment_id(spec)
    runs = mlflow.search_runs(
        [exp],
        filter_string=f"tags.`{TAG_RUN_ID}` = '{run_id}' and tags.`{TAG_KIND}` = 'pipeline'",
        order_by=["attributes.start_time ASC"],
        output_format="list",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def start_pipeline_run(spec: Spec, run_id: str, params: Mapping[str, Any] | None = None) -> str:
    """The parent run for `run_id`, created if it does not exist yet (idempotent)."""
    import mlflow

    existing = find_pipeline_run(spec, run_id)
    if existing is not None:
        return existing
    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment_id(spec), run_name=run_id, tags={TAG_RUN_ID: run_id, TAG_KIND: "pipeline"}
    )
    for key, value in flatten_params(params or {}).items():
        client.log_param(run.info.run_id, key, value)
    return run.info.run_id


def finish_pipeline_run(spec: Spec, run_id: str, status: str) -> str | None:
    import mlflow

    parent = find_pipeline_run(spec, run_id)
    if parent is not None:
        mlflow.MlflowClient().set_terminated(parent, status=status)
    return parent


@contextlib.contextmanager
def stage_run(spec: Spec, run_id: str, stage: str, params: Mapping[str, Any]) -> Iterator[Any]:
    """A nested MLflow run for one stage attempt, under the pipeline's parent run."""
    import mlflow

    parent = start_pipeline_run(spec, run_id)
    with mlflow.start_run(
        experiment_id=experiment_id(spec),
        run_name=stage,
        parent_run_id=parent,
        tags={TAG_RUN_ID: run_id, TAG_KIND: "stage", TAG_STAGE: stage},
    ) as run:
        flat = flatten_params(params)
        if flat:
            mlflow.log_params(flat)
        yield run


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> dotted MLflow params (values truncated to MLflow's limit)."""
    from domainllm.artifacts.fs import redact_url

    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            text = redact_url(value) if isinstance(value, str) else str(value)
            flat[name] = text[:_PARAM_MAX]
    return flat
