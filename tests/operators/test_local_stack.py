"""Stopping the local stack is clean: SIGTERM, SIGHUP (or Ctrl-C) to `up` or `demo` leaves no
process behind, neither Airflow's nor the task and stage processes it ran (each in a group or
session of its own), and a killed demo stops what it served and fails its DAG runs (left "running",
the next start would resume them)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from domainllm_operators.local_stack import (
    LocalStack,
    Stopped,
    fail_unfinished_runs,
    free_port,
    stop_on_signals,
    stop_serving,
)
from tests.conftest import tiny_spec_doc, write_spec

LOCAL_STACK = [sys.executable, "-m", "domainllm_operators.local_stack"]
PR_SET_CHILD_SUBREAPER = 36


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def _names(pid: int, needle: bytes) -> bool:
    with contextlib.suppress(OSError):
        return needle in Path(f"/proc/{pid}/cmdline").read_bytes() or needle in Path(f"/proc/{pid}/environ").read_bytes()
    return False


class Ours:
    """The processes a test started: those below this process (which reaps orphans while the
    test runs, so none escapes to init) and those whose environment or command line names the
    test's DOMAINLLM_HOME (AIRFLOW_HOME is inside it). Both: Airflow's processes rename
    themselves (setproctitle), which hides their environment."""

    def __init__(self, home: Path) -> None:
        self.needle = str(home).encode()
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.before = set(self._below())
        assert self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

    def _below(self) -> set[int]:
        table, found, todo = _processes(), set(), [os.getpid()]
        while todo:
            parent = todo.pop()
            kids = [pid for pid, (ppid, _) in table.items() if ppid == parent]
            found.update(kids)
            todo.extend(kids)
        return found

    def running(self) -> dict[int, str]:
        table = _processes()
        pids = (self._below() - self.before) | {pid for pid in table if _names(pid, self.needle)}
        return {pid: _cmdline(pid) for pid in pids if pid != os.getpid() and table.get(pid, (0, "Z"))[1] != "Z"}

    def left_behind(self, timeout: float = 5) -> dict[int, str]:
        deadline = time.monotonic() + timeout
        while (left := self.running()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def close(self) -> None:
        for pid in self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        time.sleep(0.5)
        for pid in self._below() - self.before:  # orphans that ended here
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _catches(pid: int, sig: signal.Signals) -> bool:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & 1 << (sig - 1))
    return False


@pytest.fixture
def ours(home: Path) -> Iterator[Ours]:
    tracker = Ours(home)
    yield tracker
    tracker.close()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


_TREE = """
import os, signal, subprocess, sys, time
stage = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
subprocess.Popen([sys.executable, "-c", stage], start_new_session=True)  # a stage: deaf to SIGTERM
subprocess.Popen(["sleep", "300"], process_group=0)                       # a task process's group
print("ready", flush=True)
time.sleep(300)
"""


def test_stop_kills_every_group_and_session_under_the_stack(home: Path, ours: Ours) -> None:
    stack = LocalStack()
    proc = subprocess.Popen([sys.executable, "-c", _TREE], start_new_session=True, stdout=subprocess.PIPE, text=True)
    stack.procs["scheduler"] = proc
    assert proc.stdout.readline() == "ready\n"
    t0 = time.monotonic()
    stack.stop(grace=1)
    assert time.monotonic() - t0 < 5 and not stack.procs
    assert not ours.left_behind(), "a process of the stack outlived stop()"


def test_only_known_components_start_and_the_triggerer_is_one(home: Path) -> None:
    stack = LocalStack()
    assert set(stack.components()) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    with pytest.raises(ValueError, match=r"unknown Airflow components \['trigger'\]; known: .*'triggerer'"):
        stack.start(only=("trigger",))
    assert not stack.procs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda sig: sig.name)
def test_stop_signals_raise_stopped_once(sig: signal.Signals) -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        stop_on_signals()
        with pytest.raises(Stopped) as stopped:
            os.kill(os.getpid(), sig)
            time.sleep(1)
        assert stopped.value.signum == sig
        os.kill(os.getpid(), signal.SIGTERM)  # while stopping: ignored
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _supervised_sleep(state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "domainllm.serve.supervisor", "--state", str(state), "--grace-s", "2", "--",
                             "sleep", "300"], start_new_session=True)  # fmt: skip


def test_stop_serving_stops_the_pipelines_deployments_and_gateway(home: Path, corpora: Path, tmp_path: Path,
                                                                  ours: Ours) -> None:  # fmt: skip
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora))
    assert stop_serving(str(spec)) == []
    serve = home / "serve" / "tiny"
    (serve / "deployments").mkdir(parents=True)
    states = [serve / "deployments" / "stable.supervisor", serve / "gateway.supervisor"]
    deployment, gateway = (_supervised_sleep(state) for state in states)
    (serve / "deployments" / "stable.json").write_text(json.dumps(
        {"name": "stable", "version": "1", "model_path": "-", "served_name": "tiny", "port": 1, "supervisor_pid": deployment.pid,
         "log_path": "-", "state_path": str(states[0]), "started_at": 0}))  # fmt: skip
    (serve / "gateway.json").write_text(json.dumps(
        {"port": 1, "supervisor_pid": gateway.pid, "routes_path": "-", "log_root": "-", "log_path": "-",
         "state_path": str(states[1])}))  # fmt: skip
    _wait_for(lambda: all(state.exists() for state in states), 20, "the supervisors to start")
    assert stop_serving(str(spec)) == ["deployment stable", "gateway"]
    assert (deployment.wait(10), gateway.wait(10)) == (0, 0)
    assert not ours.left_behind(), "a served process outlived stop_serving"


def test_failing_the_runs_of_a_hung_api_server_does_not_delay_the_stop(home: Path) -> None:
    stack = LocalStack()
    with socket.socket() as hung:  # accepts connections, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        stack.url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        assert fail_unfinished_runs(stack) == []  # nothing triggered: not even a token is asked for
        stack._token = "t"
        t0 = time.monotonic()
        assert fail_unfinished_runs(stack, timeout=1) == []
    assert time.monotonic() - t0 < 3


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda sig: sig.name)
def test_up_leaves_nothing_running_after(sig: signal.Signals, ours: Ours) -> None:
    up = subprocess.Popen([*LOCAL_STACK, "up", "--port", str(free_port())], stdout=subprocess.PIPE, text=True)
    assert up.stdout.readline().startswith("Airflow UI: "), "Airflow did not start"
    assert any("api_server" in cmd for cmd in ours.running().values())
    up.send_signal(sig)
    assert up.wait(60) == 128 + sig
    assert not ours.left_behind(), "processes of the stack outlived `up`"


@pytest.mark.slow
def test_a_demo_killed_midway_leaves_nothing_running(home: Path, ours: Ours, corpora: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(corpora)
    doc["base_model"]["demo"]["steps"] = 1_000_000  # still training when the demo is killed
    spec = write_spec(tmp_path / "spec.yaml", doc)
    demo = subprocess.Popen([*LOCAL_STACK, "demo", "--spec", str(spec), "--run-id", "killed"], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip

    def training() -> bool:
        stages = [pid for pid, cmd in ours.running().items() if "-m domainllm stage run base_model " in cmd]
        return any(_catches(pid, signal.SIGTERM) for pid in stages)  # past start-up: lifecycle.install() ran

    _wait_for(training, 300, "the base_model stage to run")
    demo.send_signal(signal.SIGTERM)
    out, _ = demo.communicate(timeout=60)
    assert demo.returncode == 128 + signal.SIGTERM
    assert "demo stopped by SIGTERM before it finished" in out and "(nothing was serving)" in out
    assert not ours.left_behind(), "processes of the demo outlived it"
    with contextlib.closing(sqlite3.connect(home / "airflow" / "airflow.db")) as db:  # Airflow is stopped: its database
        runs = db.execute("SELECT dag_id, run_id, state FROM dag_run").fetchall()
        running = db.execute("SELECT task_id FROM task_instance WHERE state = 'running'").fetchall()
    assert [(dag, state) for dag, _, state in runs] == [("domain_llm", "failed")] and not running, out
    assert f"marked failed: domain_llm/{runs[0][1]}" in out
