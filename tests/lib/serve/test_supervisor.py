"""The server supervisor: a child that dies is restarted, one that keeps dying is given up on
(state `failed`), and SIGTERM (or SIGHUP: its terminal went away) stops the child's whole
group and leaves state `stopped`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from domainllm.serve.supervisor import alive, group_alive


def _state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _wait(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _supervise_a_child_with_a_grandchild(state: Path) -> subprocess.Popen:
    """The child starts a grandchild in its group: stopping must reach it too."""
    child = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    return subprocess.Popen([sys.executable, "-m", "domainllm.serve.supervisor", "--state", str(state), "--grace-s", "2", "--",
                             sys.executable, "-c", child])  # fmt: skip


def test_restarts_a_dead_child_and_stops_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    sup = _supervise_a_child_with_a_grandchild(state)
    try:
        _wait(lambda: _state(state).get("state") == "running")
        first = _state(state)["child_pid"]
        os.kill(first, signal.SIGKILL)
        _wait(lambda: _state(state).get("child_pid") not in (None, first) and _state(state)["state"] == "running")
        assert _state(state)["restarts"] == 1 and _state(state)["last_exit"] == -signal.SIGKILL
        second = _state(state)["child_pid"]
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(15) == 0
        assert _state(state)["state"] == "stopped" and not alive(second)
        assert not group_alive(second)  # nothing of its group left running (the sleep included)
    finally:
        sup.kill()


def test_gives_up_on_a_child_that_keeps_dying(tmp_path: Path) -> None:
    state, seen = tmp_path / "state.json", tmp_path / "seen"
    # started from a stage task, whose launcher's pid the child must not watch (it would end itself)
    child = f"import os; open({str(seen)!r}, 'w').write(os.environ.get('DOMAINLLM_PARENT_PID', 'none')); raise SystemExit(3)"
    proc = subprocess.run([sys.executable, "-m", "domainllm.serve.supervisor", "--state", str(state), "--max-restarts", "1", "--",
                           sys.executable, "-c", child], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "DOMAINLLM_PARENT_PID": "1"})  # fmt: skip
    assert proc.returncode == 1 and "exited with code 3" in proc.stderr and "giving up" in proc.stderr
    assert _state(state)["state"] == "failed" and _state(state)["last_exit"] == 3
    assert seen.read_text() == "none"


def test_sighup_stops_the_child_group_as_sigterm_does(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    sup = _supervise_a_child_with_a_grandchild(state)
    try:
        _wait(lambda: _state(state).get("state") == "running")
        pid = _state(state)["child_pid"]
        _wait(lambda: bool(psutil.Process(pid).children()))  # the sleep started in its group
        sup.send_signal(signal.SIGHUP)
        assert sup.wait(15) == 0
        assert _state(state)["state"] == "stopped" and not group_alive(pid)
    finally:
        sup.kill()
