"""Manifests checked against the Kubernetes API schemas (kubernetes-validate, strict: an
unknown field is an error, as the API server's strict field validation would make it).
Custom resources (JobSet, TrainJob, Volcano PodGroup) have no schema there: they are
reported as not checked, never as valid."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_VERSIONS = ("1.32.0", "1.37.0")
"""The oldest Kubernetes release the platform supports and the newest the schemas know."""


@dataclass(frozen=True)
class Finding:
    source: str
    """`file.yaml#n` (n-th document) or the object's kind/name."""
    kind: str
    name: str
    version: str
    status: str
    """`valid`, `invalid` or `unchecked` (a custom resource)."""
    message: str = ""


def _module():
    try:
        import kubernetes_validate
    except ImportError:
        raise RuntimeError("kubernetes-validate is not installed: pip install 'domainllm[k8s]'") from None
    return kubernetes_validate


def validate_object(obj: dict[str, Any], version: str, source: str = "") -> Finding:
    kv = _module()
    kind, name = str(obj.get("kind", "?")), str((obj.get("metadata") or {}).get("name", "?"))
    where = source or f"{kind}/{name}"
    try:
        kv.validate(obj, version, strict=True)
    except kv.SchemaNotFoundError:
        return Finding(where, kind, name, version, "unchecked",
                       f"{obj.get('apiVersion')} {kind} is a custom resource: no schema for it in Kubernetes {version}")  # fmt: skip
    except kv.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "(top level)"
        return Finding(where, kind, name, version, "invalid", f"{path}: {exc.message}")
    return Finding(where, kind, name, version, "valid")


def validate_objects(objects: Iterable[tuple[str, dict[str, Any]]], versions: Iterable[str] = DEFAULT_VERSIONS) -> list[Finding]:
    objects = list(objects)
    return [validate_object(obj, v, source) for v in versions for source, obj in objects]


def load_dir(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every document of every YAML file under `root` (or `root` itself, a file)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        raise FileNotFoundError(f"no YAML manifests under {root} (render them with `domainllm k8s render`)")
    out = []
    for path in files:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ValueError(f"{path}#{i}: a manifest must be a mapping, got {type(doc).__name__}")
            out.append((f"{path.relative_to(root) if root.is_dir() else path.name}#{i}", doc))
    return out
