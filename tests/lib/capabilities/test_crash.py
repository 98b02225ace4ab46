"""Exit statuses in words, and the native crash a child's log reports (faulthandler's
output as Python prints it, with the crashing thread's frames)."""

from __future__ import annotations

import signal
import subprocess
import sys

from domainllm.capabilities.crash import crash_in_log, describe_exit, exit_signal, last_exception


def test_exit_statuses_in_words() -> None:
    assert describe_exit(None) == "still running" and describe_exit(0) == "exited with code 0"
    assert describe_exit(-4).startswith("killed by SIGILL (illegal instruction")
    assert describe_exit(132).startswith("killed by SIGILL") and exit_signal(137) == signal.SIGKILL
    assert "out of memory" in describe_exit(-9) and exit_signal(1) is None


def test_a_real_crash_names_the_signal_and_the_frame() -> None:
    code = "import faulthandler, os, signal\ndef kernel():\n    os.kill(os.getpid(), signal.SIGILL)\nkernel()\n"
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], capture_output=True, text=True)
    assert done.returncode == -signal.SIGILL
    crash = crash_in_log("some log line\n" + done.stderr)
    assert crash is not None and crash.name == "SIGILL" and crash.frames[0] == "<string>:3 in kernel"
    assert crash.summary().startswith("SIGILL (illegal instruction") and crash.summary().endswith("in <string>:3 in kernel")
    assert crash_in_log("INFO all is well\nTraceback (most recent call last):\nValueError: no") is None


def test_the_last_exception_of_a_log() -> None:
    log = ("(APIServer pid=1) ERROR 12-04 18:00:42 [core.py:9] ValueError: first\n"
           "Traceback (most recent call last):\n  File \"x.py\", line 1\nvllm.v1.engine.exceptions.EngineDeadError: engine died\n")
    assert last_exception(log) == "EngineDeadError: engine died" and last_exception("fine\n") is None
