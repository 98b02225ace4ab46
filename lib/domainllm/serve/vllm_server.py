"""A vLLM OpenAI-compatible server for one model, as a child process: started in its own
process group from the serving environment's Python (`DOMAINLLM_VLLM_PYTHON`, which
`make serve-env` creates as `.venv-serve`), ready when `/health` answers, stopped with the
whole group on exit. The server's log goes to a file; a server that dies or never becomes
healthy raises with the end of that log."""

from __future__ import annotations

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

from domainllm.env import home

log = logging.getLogger(__name__)

PYTHON_ENV = "DOMAINLLM_VLLM_PYTHON"
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
        return env

    def start(self, *, supervised_state: Path | None = None) -> VllmServer:
        """Starts the server and waits for /health. With `supervised_state`, it runs under the
        supervisor (restarted if it dies; the state file says how it is doing), in a session
        of its own that outlives this process: stop it with `stop()` or `stop_group(pid)`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
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
                raise ServerError(f"vLLM exited with code {code} while starting {self.model_path}:\n{self.log_tail()}")
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

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

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
