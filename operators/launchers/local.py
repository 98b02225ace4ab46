"""Local launcher: the stage command as a child process of the Airflow worker.

The child gets its own process group, so a task kill reaches everything it started
(SIGTERM, then SIGKILL after the grace period). Its output is streamed line by line into
the task log while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from domainllm.launch import PROGRAM, LaunchRequest
from domainllm.lifecycle import PARENT_PID_ENV
from domainllm_operators.launchers.base import LaunchResult, OnHandle


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalLauncher:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._grace = 30.0
        self._killer: threading.Timer | None = None

    @staticmethod
    def argv(request: LaunchRequest) -> list[str]:
        """The stage command on the image's interpreter; with several processes per node,
        under torchrun with a local rendezvous (gloo on CPU, NCCL on GPUs)."""
        python = request.python or sys.executable
        command = list(request.command)
        if command and command[0] == PROGRAM:
            command = [python, "-m", "domainllm", *command[1:]]
            procs = request.resources.processes_per_node()
            if procs > 1:
                command[1:1] = ["-m", "torch.distributed.run", "--nproc-per-node", str(procs), "--master-addr",
                                "127.0.0.1", "--master-port", str(_free_port())]  # fmt: skip
        return command

    @staticmethod
    def thread_env(request: LaunchRequest) -> dict[str, str]:
        """The request's math-library threads, unless this process's environment sets them."""
        return {var: n for var, n in request.thread_env().items() if var not in os.environ}

    def launch(self, request: LaunchRequest, log: logging.Logger, on_handle: OnHandle | None = None) -> LaunchResult:
        argv = self.argv(request)
        env = {**os.environ, **self.thread_env(request), **request.env, "PYTHONUNBUFFERED": "1",
               PARENT_PID_ENV: str(os.getpid())}  # fmt: skip
        self._grace = request.grace_period_s
        log.info("launching %s (run %s): %s", request.name, request.run_id, " ".join(request.command))
        t0 = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise RuntimeError(f"cannot start {argv[0]!r} for {request.name}: {exc} (check runtime.images)") from exc
        proc = self._proc
        if on_handle is not None:
            on_handle({"launcher": "local", "pid": proc.pid})
        try:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                log.info("%s", raw.decode("utf-8", "replace").rstrip("\n"))
            exit_code = proc.wait()
        finally:
            if proc.poll() is None:  # we are being unwound (task interrupted): stop the child
                self.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(self._grace + 5)
            if self._killer is not None:
                self._killer.cancel()
        duration = time.monotonic() - t0
        log.info("%s exited with code %s after %.1fs", request.name, exit_code, duration)
        return LaunchResult(exit_code=exit_code, duration_s=duration, handle=f"pid:{proc.pid}", attempt_id=request.attempt_id)

    def kill(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._signal_group(proc.pid, signal.SIGTERM)
        if self._killer is None:
            self._killer = threading.Timer(self._grace, self._signal_group, (proc.pid, signal.SIGKILL))
            self._killer.daemon = True
            self._killer.start()

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)  # the child leads its own group: pgid == pid
