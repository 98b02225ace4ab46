"""Launchers by name; which one runs a stage is configuration (`runtime.launcher`)."""

from __future__ import annotations

from domainllm_operators.launchers.base import Launcher, LaunchResult
from domainllm_operators.launchers.local import LocalLauncher

_LAUNCHERS: dict[str, type] = {"local": LocalLauncher}


def get_launcher(kind: str) -> Launcher:
    try:
        return _LAUNCHERS[kind]()
    except KeyError:
        raise ValueError(f"unknown launcher {kind!r}; available: {sorted(_LAUNCHERS)}") from None


__all__ = ["LaunchResult", "Launcher", "LocalLauncher", "get_launcher"]
