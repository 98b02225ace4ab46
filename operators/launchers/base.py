"""The launcher interface: run a `LaunchRequest` to completion, stream its logs, and
stop it on request."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from domainllm.launch import LaunchRequest


@dataclass(frozen=True)
class LaunchResult:
    exit_code: int
    duration_s: float
    handle: str
    """Launcher-specific identifier (a pid, a pod name)."""


class Launcher(Protocol):
    def launch(self, request: LaunchRequest, log: logging.Logger) -> LaunchResult:
        """Run the request to completion, streaming its output into `log`."""
        ...

    def kill(self) -> None:
        """Stop what `launch` started (called from the task's on_kill)."""
        ...
