"""What a dead child process tells: its exit status in words, and what it printed as it died.

Child processes we start (vLLM servers and their workers, the quantization worker) run with
PYTHONFAULTHANDLER=1, so a native crash prints `Fatal Python error: Illegal instruction` and
the Python stack of the thread that crashed: the frame that called into the kernel that died."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field

MEANING = {
    signal.SIGILL: "illegal instruction: native code used a CPU instruction this machine lacks or has not enabled",
    signal.SIGSEGV: "segmentation fault in native code",
    signal.SIGBUS: "bus error in native code",
    signal.SIGFPE: "floating-point exception in native code",
    signal.SIGABRT: "aborted by native code",
    signal.SIGKILL: "killed (out of memory, or stopped by someone)",
    signal.SIGTERM: "terminated",
    signal.SIGINT: "interrupted",
    signal.SIGHUP: "hung up",
}
# Deaths that say nothing about what the machine can run: a retry may succeed.
TRANSIENT = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
# faulthandler's names for the signals it reports
FATAL = {"Illegal instruction": signal.SIGILL, "Segmentation fault": signal.SIGSEGV, "Bus error": signal.SIGBUS,
         "Floating-point exception": signal.SIGFPE, "Floating point exception": signal.SIGFPE, "Aborted": signal.SIGABRT}  # fmt: skip
_FATAL_LINE = re.compile(r"Fatal Python error: (?P<what>[A-Za-z -]+)")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


def exit_signal(code: int | None) -> int | None:
    """The signal that ended a process: a negative return code (Python's subprocess), or 128+N
    (a shell's way of saying it)."""
    if code is None:
        return None
    if code < 0:
        return -code
    if 128 < code < 128 + 65:
        return code - 128
    return None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_exit(code: int | None) -> str:
    """`exited with code 1`, `killed by SIGILL (illegal instruction: ...)`, `still running`."""
    if code is None:
        return "still running"
    signum = exit_signal(code)
    if signum is None:
        return f"exited with code {code}"
    return f"killed by {signal_name(signum)} ({MEANING.get(signum, 'signal ' + str(signum))})"


@dataclass
class Crash:
    """A native crash a child reported on its way out."""

    signal: int
    frames: list[str] = field(default_factory=list)  # innermost first: "vllm/_custom_ops.py:123 in onednn_mm"

    @property
    def name(self) -> str:
        return signal_name(self.signal)

    def summary(self) -> str:
        where = f" in {self.frames[0]}" if self.frames else ""
        return f"{self.name} ({MEANING.get(self.signal, 'a fatal signal')}){where}"

    def to_dict(self) -> dict:
        return {"signal": self.name, "frames": self.frames}


def crash_in_log(text: str) -> Crash | None:
    """The first `Fatal Python error: <signal>` in a log, with the crashing thread's frames."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _FATAL_LINE.search(line)
        if not m or m["what"].strip() not in FATAL:
            continue
        return Crash(FATAL[m["what"].strip()], _current_thread_frames(lines[i + 1:]))
    return None


def _current_thread_frames(lines: list[str], limit: int = 6) -> list[str]:
    """The frames under `Current thread ...` (faulthandler prints them most recent first)."""
    frames: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("Current thread") or line.startswith("Stack (most recent call first)"):
            inside = True
            continue
        if not inside:
            continue
        m = _FRAME.match(line)
        if not m:
            break
        frames.append(f"{_short_path(m['file'])}:{m['line']} in {m['func']}")
        if len(frames) == limit:
            break
    return frames


def _short_path(path: str) -> str:
    """`.../site-packages/vllm/_custom_ops.py` -> `vllm/_custom_ops.py`."""
    for marker in ("site-packages/", "dist-packages/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3" and "/" in tail else tail
    return path


_EXCEPTION = re.compile(r"^(?:\(\w+ pid=\d+\)\s+)?(?:ERROR .*?\] )?(?P<exc>[A-Za-z_][\w.]*(?:Error|Exception)): (?P<msg>.+)$")


def exceptions(text: str) -> list[str]:
    """Every `SomeError: message` line of a log (a Python traceback's verdict), in order, once each."""
    found: list[str] = []
    for line in text.splitlines():
        m = _EXCEPTION.match(line.strip())
        if m:
            verdict = f"{m['exc'].rsplit('.', 1)[-1]}: {m['msg'][:300]}"
            if verdict not in found:
                found.append(verdict)
    return found


def last_exception(text: str) -> str | None:
    found = exceptions(text)
    return found[-1] if found else None
