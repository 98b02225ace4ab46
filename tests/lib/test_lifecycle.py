"""A stage process never outlives its launcher, and SIGTERM unwinds it cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

_STAGE = """
import sys, time
from domainllm import lifecycle
lifecycle.install()
try:
    print("ready", flush=True)
    time.sleep(600)
finally:
    open(sys.argv[1], "w").write("cleaned up")
"""

_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], start_new_session=True,
                         env={**os.environ, "DOMAINLLM_PARENT_PID": str(os.getpid())})
print(child.pid, flush=True)
child.wait()
"""


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_stage_exits_when_its_launcher_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, _STAGE, str(marker)], stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    time.sleep(1.0)
    launcher.kill()  # SIGKILL: the launcher gets no chance to clean up
    launcher.wait()
    assert _gone(child, 10), "stage process outlived its launcher"
    assert marker.read_text() == "cleaned up"  # it unwound through SIGTERM, running finally blocks


def test_sigterm_exits_with_143_after_unwinding(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", _STAGE, str(marker)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 143
    assert marker.read_text() == "cleaned up"


_STAGE_WITH_A_DEAF_CHILD = """
import subprocess, sys, time
from domainllm import lifecycle
lifecycle.install(orphan_grace_s=2)
deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"
child = subprocess.Popen([sys.executable, "-c", deaf], stdout=subprocess.PIPE, text=True)  # in the stage's group
child.stdout.readline()
print("child", child.pid, flush=True)
time.sleep(600)
"""


def _group(pgid: int) -> list[int]:
    """The live (not zombie) members of a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
    return members


def test_an_orphaned_stage_group_is_sigkilled_after_the_grace() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, _STAGE_WITH_A_DEAF_CHILD, "-"], stdout=subprocess.PIPE,
                                text=True)  # fmt: skip
    stage = int(launcher.stdout.readline())  # the launcher's line comes first: the stage needs a second to start
    try:
        child = int(launcher.stdout.readline().split()[1])
        assert os.getpgid(child) == stage
        launcher.kill()
        launcher.wait()
        assert _gone(stage, 10), "stage process outlived its launcher"
        deadline = time.monotonic() + 10  # the orphan watch's 1 s poll + 2 s grace, with room for a busy machine
        while (left := _group(stage)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, "processes of the orphaned stage's group outlived the grace"
    finally:
        for pid in _group(stage):
            os.kill(pid, signal.SIGKILL)


_UNDER_A_MIDDLE = """
import json, os, subprocess, sys
# Like torchrun's agent: the stage's parent, but not the launcher; the stage in a session of its own
code, marker = json.loads(sys.argv[1])
stage = subprocess.Popen([sys.executable, "-c", code, marker], start_new_session=True)
print(os.getpid(), stage.pid, flush=True)
stage.wait()
print("stage ended", flush=True)
"""


def test_a_stage_under_torchrun_watches_its_launcher_not_its_parent(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, _UNDER_A_MIDDLE, json.dumps([_STAGE, str(marker)])],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
    launcher.stdout.readline()  # the middle process's pid, as the launcher sees it
    middle, stage = map(int, launcher.stdout.readline().split())
    try:
        assert not _gone(stage, 3), "a stage whose parent is not the launcher took itself for an orphan"
        launcher.kill()
        launcher.wait()
        assert _gone(stage, 10), "stage process outlived its launcher"
        assert marker.read_text() == "cleaned up"
    finally:
        for pid in (stage, middle):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
