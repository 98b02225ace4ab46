"""The MLflow model registry's view of the pipeline's model: the registered model is named
after the spec, and the `champion` alias marks the version serving now."""

from __future__ import annotations

from dataclasses import dataclass

from domainllm.spec import Spec

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    model_path: str


def champion(spec: Spec) -> RegisteredModel | None:
    """The version under the `champion` alias, or None before the first promotion."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from domainllm.tracking import experiment_id

    experiment_id(spec)  # sets the tracking URI
    try:
        mv = mlflow.MlflowClient().get_model_version_by_alias(spec.name, CHAMPION)
    except MlflowException:  # no such model or alias yet
        return None
    return RegisteredModel(str(mv.version), mv.source)
