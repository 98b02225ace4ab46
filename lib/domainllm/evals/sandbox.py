"""Running generated code safely: `run_sandboxed(command, files, limits)`.

Each run gets a fresh temporary work folder holding `files`, its own process group, and
(where the OS allows: root, or a kernel with unprivileged user namespaces) new mount,
network and PID namespaces: no network but a downed loopback, every filesystem read-only
except the work folder, private scratch folders, and every process of the run killed with
its namespace. Inside, `jail.py` sets CPU time, address space, process, file size and open
file limits and drops root. The wall-clock timeout kills the whole group; the work folder
is removed afterwards. What could not be isolated is reported in `Outcome.isolation`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

_OUTPUT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    open_files: int = 64


@dataclass
class Outcome:
    exit_code: int | None
    """None when the run was killed at the wall-clock limit."""
    timed_out: bool
    stdout: str
    stderr: str
    duration_s: float
    isolation: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@functools.cache
def namespaces_available() -> bool:
    """Whether `unshare` can give a run its own mount, network and PID namespaces here."""
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_sandboxed(command: list[str], files: dict[str, str], limits: Limits | None = None, *, stdin: str | None = None) -> Outcome:
    """Runs `command` (relative paths resolve in the work folder) with `files` written there."""
    limits = limits or Limits()
    isolated = namespaces_available()
    workdir = tempfile.mkdtemp(prefix="domainllm-sandbox-")
    try:
        for name, text in files.items():
            path = os.path.join(workdir, name)
            if os.path.dirname(name):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        jail = [sys.executable, "-m", "domainllm.evals.jail", "--workdir", workdir, "--cpu-s", str(limits.cpu_s),
                "--memory-mb", str(limits.memory_mb), "--processes", str(limits.processes), "--file-mb",
                str(limits.file_mb), "--open-files", str(limits.open_files)]  # fmt: skip
        if isolated:
            jail = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", *jail, "--seal"]
        t0 = time.monotonic()
        proc = subprocess.Popen([*jail, "--", *command], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": _lib_path()})  # fmt: skip
        timed_out = False
        try:
            out, err = proc.communicate(stdin.encode() if stdin is not None else None, timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            out, err = proc.communicate()
        _kill_group(proc.pid)  # whatever the program left running in its group
        return Outcome(
            exit_code=None if timed_out else proc.returncode,
            timed_out=timed_out,
            stdout=out[:_OUTPUT_LIMIT].decode("utf-8", "replace"),
            stderr=err[:_OUTPUT_LIMIT].decode("utf-8", "replace"),
            duration_s=time.monotonic() - t0,
            isolation={"network": isolated, "filesystem": isolated, "processes": isolated},
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _lib_path() -> str:
    """Where `domainllm` is importable from, for the jail's interpreter."""
    import domainllm

    return os.path.dirname(os.path.dirname(os.path.abspath(domainllm.__file__)))
