"""A vLLM OpenAI-compatible server for one model, as a child process: started in its own
process group from the serving environment's Python (`DOMAINLLM_VLLM_PYTHON`, which
`make serve-env` creates as `.venv-serve`), ready when `/health` answers, stopped with the
whole group on exit. The server's log goes to a file; a server that dies or never becomes
healthy raises with what killed it (the exit status, a native crash and the Python frame it
happened in: every process of the server runs with PYTHONFAULTHANDLER=1) and the end of that
log. `evidence()` and `explain()` say the same about a server whose engine died later, under
a request."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from domainllm.capabilities.crash import TRANSIENT, crash_in_log, describe_exit, exceptions
from domainllm.env import home

log = logging.getLogger(__name__)

PYTHON_ENV = "DOMAINLLM_VLLM_PYTHON"
# What vLLM's processes log after its engine died, whatever killed it
_CONSEQUENCES = ("EngineDeadError", "Executor failed", "died unexpectedly", "EngineCore encountered")
LAUNCHER = Path(__file__).with_name("vllm_main.py")


class ServerError(RuntimeError):
    pass


def vllm_python() -> str | None:
    """The serving environment's Python, when one is configured and exists."""
    value = os.environ.get(PYTHON_ENV)
    return value if value and os.access(value, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server (vLLM, the gateway) answers /health on `port`."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class VllmServer:
    def __init__(self, model_path: str, *, python: str | None = None, served_name: str = "model", port: int | None = None,
                 extra_args: Sequence[str] = (), env: dict[str, str] | None = None, log_path: str | None = None,
                 start_timeout_s: float = 600) -> None:  # fmt: skip
        python = python or vllm_python()
        if python is None:
            raise ServerError(f"no vLLM environment: run `make serve-env` and set {PYTHON_ENV} to its python "
                              f"(.venv-serve/bin/python), or use the transformers backend")  # fmt: skip
        self.python, self.model_path, self.served_name = python, model_path, served_name
        self.port = port or free_port()
        self.extra_args, self.env = tuple(extra_args), dict(env or {})
        self.log_path = Path(log_path) if log_path else home() / "logs" / f"vllm-{self.port}.log"
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0  # the log is appended to: what this start wrote begins here
        self.supervised_state: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [self.python, str(LAUNCHER), "serve", self.model_path, "--host", "127.0.0.1", "--port", str(self.port),
                "--served-model-name", self.served_name, *self.extra_args]  # fmt: skip

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        cache = home() / "cache" / "vllm"
        env.setdefault("VLLM_CACHE_ROOT", str(cache))
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; only read by the CPU build
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("VLLM_DO_NOT_TRACK", "1")
        env.setdefault("PYTHONFAULTHANDLER", "1")  # a native crash in any of its processes names its frame in the log
        return env

    def start(self, *, supervised_state: Path | None = None) -> VllmServer:
        """Starts the server and waits for /health. With `supervised_state`, it runs under the
        supervisor (restarted if it dies; the state file says how it is doing), in a session
        of its own that outlives this process: stop it with `stop()` or `stop_group(pid)`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = self.command()
        if supervised_state is not None:
            command = [sys.executable, "-m", "domainllm.serve.supervisor", "--state", str(supervised_state), "--grace-s", "15",
                       "--", *command]  # fmt: skip
        self.supervised_state = supervised_state
        log.info("vLLM: starting %s on port %d (log: %s)", self.model_path, self.port, self.log_path)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.environment(),
                                         start_new_session=True)  # fmt: skip
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.start_timeout_s:
            code = self._exit_code()
            if code is not None:
                self.stop()
                crash = crash_in_log(self.log_text())
                died = f"{describe_exit(code)}; {crash.summary()}" if crash else describe_exit(code)
                raise ServerError(f"vLLM {died} while starting {self.model_path}:\n{self.log_tail()}")
            if self.healthy():
                log.info("vLLM: ready in %.0fs", time.monotonic() - t0)
                return
            time.sleep(1)
        self.stop()
        raise ServerError(f"vLLM did not become healthy within {self.start_timeout_s:.0f}s:\n{self.log_tail()}")

    def _exit_code(self) -> int | None:
        """The server's exit code if it died while starting (under the supervisor: its first exit)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        if self.supervised_state is not None:
            try:
                return json.loads(self.supervised_state.read_text()).get("last_exit")
            except (OSError, ValueError):
                return None
        return None

    def healthy(self) -> bool:
        return healthy(self.port)

    def log_text(self) -> str:
        """What the server wrote to its log since it was started."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        kept = [line for line in self.log_text().splitlines() if "Route: " not in line]  # the route table is noise
        return "\n".join(kept[-lines:]) or "(no log)"

    def evidence(self, wait_s: float = 10) -> dict:
        """What happened to the server, after a request failed: its exit status (waiting up to
        `wait_s` for a server whose engine died to shut down), the native crash its log
        reports, and the log's last lines."""
        deadline = time.monotonic() + wait_s
        while self.proc is not None and self.proc.poll() is None and time.monotonic() < deadline:
            if crash_in_log(self.log_text()) is not None:
                break
            time.sleep(0.5)
        code = self.proc.poll() if self.proc is not None else None
        crash = crash_in_log(self.log_text())
        return {"exit_code": code, "exit": describe_exit(code), "crash": crash.to_dict() if crash else None,
                "log_tail": self.log_tail(40)}  # fmt: skip

    def causes(self) -> list[str]:
        """The exceptions the server logged before its engine died (after it, what is logged
        are consequences: the engine's shutdown, cancelled requests)."""
        text = self.log_text()
        cut = min((i for i in (text.find(c) for c in _CONSEQUENCES) if i >= 0), default=len(text))
        return exceptions(text[:cut])

    def explain(self, error: str) -> tuple[str, bool]:
        """`error` (what the client saw) with what killed the engine, and whether that is a fact
        about this machine and model (a native crash, an exception in the model's kernels)
        rather than a chance event (an outside kill, a timeout)."""
        self._settle()
        text = self.log_text()
        crash = crash_in_log(text)
        if crash is not None:
            return f"vLLM's engine died: {crash.summary()} (the client saw: {error})", crash.signal not in TRANSIENT
        causes = self.causes()
        if causes:
            return f"vLLM's engine failed: {causes[0]} (the client saw: {error})", True
        if any(c in text for c in _CONSEQUENCES):
            return f"vLLM's engine died without a crash report, as after a SIGKILL (out of memory?) (the client saw: {error})", False
        code = self.proc.poll() if self.proc is not None else None
        return (f"the vLLM server {describe_exit(code)} (the client saw: {error})" if code is not None else error), False

    def _settle(self, timeout_s: float = 5) -> None:
        """A request fails as soon as the server's socket closes, which can be before the
        process has exited and its crash report reached the log: give it a moment."""
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout_s)

    def stop(self, grace_s: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
