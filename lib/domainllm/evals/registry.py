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
ADAPTER_DIR = "adapter"
"""A LoRA-trained model's adapter, beside the merged model."""
BASE_DIR = "base"
"""In the registry's copy of a LoRA-trained model: the base its adapter was trained on."""


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    model_path: str
    fingerprint: str | None = None
    """The training stage's output fingerprint: the same fingerprint is the same model."""
    run_id: str | None = None
    """The pipeline run that trained it."""


def store_model(spec: Spec, location: str, fingerprint: str, name: str | None = None) -> str:
    """Copies the model folder at `location` to the registry's store of the registered model
    `name` (default: the spec's) once (a copy in progress is never taken for a finished one:
    `_COMPLETE` is written last) and returns the copy's URL. A LoRA-trained model's copy also
    holds its adapter's base model, under `base/`."""
    import uuid

    from domainllm.artifacts.fs import join, url_to_fs

    dest = join(spec.artifact_root, "registry", name or spec.name, fingerprint[:16])
    fs, path = url_to_fs(dest)
    if fs.exists(join(path, COMPLETE)):
        return dest
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    _copy(location, fs, tmp)
    base = adapter_base(location)
    if base is not None and url_to_fs(base)[0].exists(url_to_fs(base)[1]):  # LoRA-trained: keep the base to serve it + adapter
        _copy(base, fs, join(tmp, BASE_DIR))
    if fs.exists(path):  # an interrupted earlier copy
        fs.rm(path, recursive=True)
    fs.mv(tmp, path, recursive=True)
    fs.touch(join(path, COMPLETE))
    return dest


def _copy(location: str, fs, dest: str) -> None:
    import shutil

    from domainllm.artifacts.fs import is_local, url_to_fs

    src_fs, src = url_to_fs(location)
    if is_local(fs) and is_local(src_fs):
        shutil.copytree(src, dest)
    else:
        src_fs.get(src.rstrip("/") + "/", dest, recursive=True) if is_local(fs) else fs.copy(src.rstrip("/") + "/", dest, recursive=True)


def adapter_base(location: str) -> str | None:
    """The base model a LoRA-trained model folder's `adapter/` was trained on, or None."""
    import json

    from domainllm.artifacts.fs import join, url_to_fs

    fs, path = url_to_fs(location)
    config = join(path, ADAPTER_DIR, "adapter_config.json")
    if not fs.exists(config):
        return None
    with fs.open(config, "rb") as fh:
        return json.loads(fh.read()).get("base_model_name_or_path")


def champion(spec: Spec) -> RegisteredModel | None:
    """The version under the `champion` alias, or None before the first promotion."""
    return by_alias(spec, CHAMPION)


class RegistryUnavailable(RuntimeError):
    """The registry could not be read: not the same as "no such alias" (a gate that took it
    for "no champion yet" would promote a model worse than the champion)."""


def not_there(exc: Exception) -> bool:
    """Whether an MLflow error says the registered model or the alias does not exist (and
    not that MLflow could not be asked)."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "alias" in str(exc) and "not found" in str(exc))


def without_credentials(uri: str) -> str:
    """`uri` without a user name or password in it (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))


def by_alias(spec: Spec, alias: str) -> RegisteredModel | None:
    """The version under `alias`, or None when the model or the alias does not exist yet;
    RegistryUnavailable when the registry cannot be read (MLflow down, refused, broken)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from domainllm.tracking import experiment_id, tracking_uri

    try:
        experiment_id(spec)  # sets the tracking URI
        mv = mlflow.MlflowClient().get_model_version_by_alias(spec.name, alias)
    except MlflowException as exc:
        if not_there(exc):
            return None
        raise RegistryUnavailable(f"the model registry ({without_credentials(tracking_uri(spec))}) could not be read for alias {alias!r} "
                                  f"({exc.error_code}); nothing is decided without it: check that MLflow is up and "
                                  f"reachable, then retry") from None  # fmt: skip
    tags = mv.tags or {}
    return RegisteredModel(str(mv.version), mv.source, tags.get(TAG_FINGERPRINT), tags.get(TAG_RUN_ID))


def is_champion(current: RegisteredModel | None, fingerprint: str, location: str) -> bool:
    """Whether the training output (`fingerprint`, at `location`) is the registered champion."""
    if current is None:
        return False
    return current.fingerprint == fingerprint if current.fingerprint else current.model_path == location
