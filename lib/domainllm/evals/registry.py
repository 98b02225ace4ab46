"""The MLflow model registry's view of the pipeline's model: the registered model is named
after the spec, and the `champion` alias marks the version serving now.

A registered version points at an immutable copy of the model folder,
`<artifact_root>/registry/<name>/<fingerprint>/`, not at the training stage's folder: a rerun
of the same run id replaces that folder, and must not change what the champion is."""

from __future__ import annotations

from dataclasses import dataclass

from domainllm.spec import Spec

CHAMPION = "champion"
CHALLENGER = "challenger"
PRODUCTION = "production"
"""The version serving all traffic (moved by the `rollout` stage after a successful rollout)."""
PREVIOUS_PRODUCTION = "previous-production"
TAG_FINGERPRINT = "domainllm.fingerprint"
TAG_RUN_ID = "domainllm.run_id"
COMPLETE = "_COMPLETE"


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    model_path: str
    fingerprint: str | None = None
    """The training stage's output fingerprint: the same fingerprint is the same model."""
    run_id: str | None = None
    """The pipeline run that trained it."""


def store_model(spec: Spec, location: str, fingerprint: str) -> str:
    """Copies the model folder at `location` to the registry's store once (a copy in progress
    is never taken for a finished one: `_COMPLETE` is written last) and returns the copy's URL."""
    import shutil
    import uuid

    from domainllm.artifacts.fs import is_local, join, url_to_fs

    dest = join(spec.artifact_root, "registry", spec.name, fingerprint[:16])
    fs, path = url_to_fs(dest)
    if fs.exists(join(path, COMPLETE)):
        return dest
    src_fs, src = url_to_fs(location)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    if is_local(fs) and is_local(src_fs):
        shutil.copytree(src, tmp)
    else:
        src_fs.get(src.rstrip("/") + "/", tmp, recursive=True) if is_local(fs) else fs.copy(src.rstrip("/") + "/", tmp, recursive=True)
    if fs.exists(path):  # an interrupted earlier copy
        fs.rm(path, recursive=True)
    fs.mv(tmp, path, recursive=True)
    fs.touch(join(path, COMPLETE))
    return dest


def champion(spec: Spec) -> RegisteredModel | None:
    """The version under the `champion` alias, or None before the first promotion."""
    return by_alias(spec, CHAMPION)


def by_alias(spec: Spec, alias: str) -> RegisteredModel | None:
    """The version under `alias`, or None when the model or the alias does not exist yet."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from domainllm.tracking import experiment_id

    experiment_id(spec)  # sets the tracking URI
    try:
        mv = mlflow.MlflowClient().get_model_version_by_alias(spec.name, alias)
    except MlflowException:  # no such model or alias yet
        return None
    tags = mv.tags or {}
    return RegisteredModel(str(mv.version), mv.source, tags.get(TAG_FINGERPRINT), tags.get(TAG_RUN_ID))


def is_champion(current: RegisteredModel | None, fingerprint: str, location: str) -> bool:
    """Whether the training output (`fingerprint`, at `location`) is the registered champion."""
    if current is None:
        return False
    return current.fingerprint == fingerprint if current.fingerprint else current.model_path == location
