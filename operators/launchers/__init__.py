"""Launchers by name; which one runs a stage is configuration (`runtime.launcher`)."""

from __future__ import annotations

from pathlib import PurePath

from domainllm.spec import Spec
from domainllm_operators.launchers.base import DeferrableLauncher, Launcher, LaunchResult, OnHandle
from domainllm_operators.launchers.local import LocalLauncher

LAUNCHERS = ("local", "kubernetes")


def get_launcher(spec: Spec, spec_path: str, mlflow_run_id: str | None = None) -> Launcher:
    """The launcher `runtime.launcher` names, set up for this spec file and run."""
    kind = spec.runtime.launcher
    if kind == "local":
        return LocalLauncher()
    if kind == "kubernetes":
        from domainllm.k8s.pod import PodTarget
        from domainllm_operators.launchers.kubernetes import KubernetesLauncher

        return KubernetesLauncher(PodTarget(spec.runtime.kubernetes, PurePath(spec_path).name, mlflow_run_id))
    raise ValueError(f"unknown launcher {kind!r}; available: {list(LAUNCHERS)}")


__all__ = ["DeferrableLauncher", "LaunchResult", "Launcher", "LocalLauncher", "OnHandle", "get_launcher"]
