"""`tracking`: where MLflow runs go."""

from __future__ import annotations

from domainllm.spec.base import Section


class TrackingConfig(Section):
    uri: str | None = None
    """MLflow tracking URI. Empty: `$MLFLOW_TRACKING_URI`, else a SQLite store in the
    working folder (`$DOMAINLLM_HOME/mlflow/mlflow.db`)."""
    experiment: str | None = None
    """MLflow experiment name. Empty: the spec's `name`."""
