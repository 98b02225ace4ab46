"""The local launcher with real child processes: live log streaming, exit codes, and a
task kill reaching the whole process group."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from domainllm.launch import LaunchRequest
from domainllm.spec import load_spec
from domainllm_operators.launchers import get_launcher
from domainllm_operators.launchers.local import LocalLauncher


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.monotonic(), record.getMessage()))


@pytest.fixture
def log() -> tuple[logging.Logger, _Recorder]:
    logger = logging.getLogger(f"test-launcher-{time.monotonic_ns()}")
    logger.setLevel(logging.INFO)
    rec = _Recorder()
    logger.addHandler(rec)
    return logger, rec


def _request(code: str, grace: float = 5.0, python: str | None = None) -> LaunchRequest:
    return LaunchRequest(
        name="probe", run_id="r", command=("python-inline", "-c", code), image="worker", image_ref=None,
        python=python, grace_period_s=grace,
    )  # fmt: skip


class _InlineLauncher(LocalLauncher):
    """Runs `python -c CODE` through the real launch/kill machinery."""

    @staticmethod
    def argv(request: LaunchRequest) -> list[str]:
        return [request.python or sys.executable, *request.command[1:]]


def test_stage_command_maps_to_the_image_interpreter() -> None:
    req = LaunchRequest(
        name="ingest", run_id="r", command=("domainllm", "stage", "run", "ingest"), image="worker",
        image_ref=None, python="/opt/serve-venv/bin/python",
    )  # fmt: skip
    assert LocalLauncher.argv(req) == ["/opt/serve-venv/bin/python", "-m", "domainllm", "stage", "run", "ingest"]
    spec = load_spec(Path(__file__).parents[3] / "examples/demo/spec.yaml")
    assert isinstance(get_launcher(spec, "spec.yaml"), LocalLauncher)


def test_output_is_streamed_live_and_exit_code_returned(log) -> None:
    logger, rec = log
    code = "import time,sys\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')\nsys.exit(3)"
    t0 = time.monotonic()
    result = _InlineLauncher().launch(_request(code), logger)
    end = time.monotonic()
    assert result.exit_code == 3
    first = next(t for t, msg in rec.lines if msg == "first")
    assert first - t0 < 1.2 and end - first > 1.0  # logged while the child was still running
    assert any(msg == "second" for _, msg in rec.lines)


_TREE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(os.environ["PIDFILE"], "w").write(f"{os.getpid()} {child.pid}")
print("ready", flush=True)
{handler}
time.sleep(600)
"""


def _run_and_kill(log, handler: str, grace: float, tmp_path: Path) -> tuple[int, list[int], float]:
    logger, rec = log
    pidfile = tmp_path / "pids"
    os.environ["PIDFILE"] = str(pidfile)
    launcher = _InlineLauncher()
    out: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: out.setdefault("r", launcher.launch(_request(_TREE.replace("{handler}", handler), grace), logger))
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not any(msg == "ready" for _, msg in rec.lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in pidfile.read_text().split()]
    t0 = time.monotonic()
    launcher.kill()
    thread.join(60)
    took = time.monotonic() - t0
    return out["r"].exit_code, pids, took


def _all_gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_kill_sends_sigterm_to_the_whole_process_group(log, tmp_path: Path) -> None:
    exit_code, pids, took = _run_and_kill(log, "", grace=10, tmp_path=tmp_path)
    assert exit_code == -15
    assert took < 5  # SIGTERM was enough: no wait for the grace period
    assert _all_gone(pids), "the grandchild survived the task kill"


def test_kill_escalates_to_sigkill_after_the_grace_period(log, tmp_path: Path) -> None:
    ignore = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
    exit_code, pids, took = _run_and_kill(log, ignore, grace=1.5, tmp_path=tmp_path)
    assert exit_code == -9
    assert 1.0 < took < 10
    assert _all_gone(pids)


def test_unstartable_interpreter_is_a_clear_error(log) -> None:
    logger, _ = log
    with pytest.raises(RuntimeError, match="cannot start '/nonexistent/python' for probe"):
        _InlineLauncher().launch(_request("print(1)", python="/nonexistent/python"), logger)


def test_several_processes_run_under_torchrun_and_threads_follow_the_cpu_request() -> None:
    from domainllm.spec.runtime import Resources

    req = LaunchRequest(
        name="cpt", run_id="r", command=("domainllm", "stage", "run", "cpt"), image="trainer", image_ref=None,
        python="/venv/bin/python", resources=Resources(cpu="4", processes=2),
    )  # fmt: skip
    argv = LocalLauncher.argv(req)
    assert argv[:6] == ["/venv/bin/python", "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr"]
    assert argv[-5:] == ["-m", "domainllm", "stage", "run", "cpt"]
    env = LocalLauncher.thread_env(req)
    assert all(env[v] == "2" for v in env) and (env or os.environ.get("OMP_NUM_THREADS"))
    single = LaunchRequest(name="pii", run_id="r", command=("domainllm", "stage", "run", "pii"), image="worker",
                           image_ref=None, python=None, resources=Resources(cpu="500m"))  # fmt: skip
    assert LocalLauncher.argv(single)[1:3] == ["-m", "domainllm"]
    assert all(v == "1" for v in LocalLauncher.thread_env(single).values())
