"""The launcher interface: run a `LaunchRequest` to completion, stream its logs, and
stop it on request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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
    """Launcher-specific identifier (`pid:N`, `<kind>/<namespace>/<name>` with kind `pod`, `job`,
    `jobset` or `trainjob`)."""
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


@runtime_checkable
class DeferrableLauncher(Launcher, Protocol):
    """A launcher whose wait can be handed to Airflow's triggerer: `start` creates (or finds)
    what runs the request, `trigger` waits for it in the triggerer, and `finish` (in the
    resumed task, maybe another worker) reads the verdict and the log and cleans up."""

    deferrable: bool
    """False: the operator waits in the worker anyway (`launch`)."""

    def start(self, request: LaunchRequest, log: logging.Logger, on_handle: OnHandle | None = None) -> dict[str, Any]:
        """Creates or reattaches; returns the handle (what `on_handle` got)."""
        ...

    def trigger(self, handle: dict[str, Any], request: LaunchRequest, deadline: float | None) -> Any:
        """The BaseTrigger that waits for the handle's pod or job; `deadline`: epoch seconds or None."""
        ...

    def finish(self, handle: dict[str, Any], event: dict[str, Any], log: logging.Logger, duration_s: float,
               grace_s: int = 30) -> LaunchResult:  # fmt: skip
        """After the trigger's event: the verdict, the log, the clean-up."""
        ...
