"""The launcher interface: run a `LaunchRequest` to completion, stream its logs, and
stop it on request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from domainllm.k8s.status import Failure
from domainllm.launch import LaunchRequest

OnHandle = Callable[[dict[str, Any]], None]
"""Called once what runs the request exists (a pid; a pod or job and its namespace), before
waiting on it: the operator puts it in XCom so even a lost attempt leaves a trail."""


@dataclass(frozen=True)
class LaunchResult:
    exit_code: int
    duration_s: float
    handle: str
    """Launcher-specific identifier (`pid:N`, `pod/<namespace>/<name>`, `job/<namespace>/<name>`)."""
    failure: Failure | None = None
    """Why it did not succeed when the launcher knows more than an exit code (unschedulable,
    image pull, OOMKilled, evicted...), and whether a retry can help."""
    attempt_id: str | None = None
    """The attempt id the command ran with: the request's, or a reattached pod's own."""


class Launcher(Protocol):
    def launch(self, request: LaunchRequest, log: logging.Logger, on_handle: OnHandle | None = None) -> LaunchResult:
        """Run the request to completion, streaming its output into `log`."""
        ...

    def kill(self) -> None:
        """Stop what `launch` started (called from the task's on_kill)."""
        ...
