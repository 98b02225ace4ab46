"""A stage process never outlives its launcher, and SIGTERM unwinds it cleanly."""

from __future__ import annotations

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
