"""Running generated code safely: `run_sandboxed(command, files, limits)`.

Generated code (eval completions, code blocks in served answers) is a stranger's program. Each
run gets a fresh work folder holding `files` and runs as `nobody`, never as the caller: a root
caller starts it as uid 65534 (CI, a root container), any other caller as itself. It then goes
through `unshare -r` into new user, mount, network and PID namespaces, which needs no
privilege (the same in a non-root pod with every capability dropped), and `jail.py` seals
it in: everything read-only but its folder, the platform's home and mounted secrets hidden,
private scratch folders, a nested user namespace where it holds no capability, resource
limits, `no_new_privs`, a seccomp filter, an environment built from scratch. The wall-clock
timeout kills the whole group; every process of the run dies with its PID namespace; the
work folder is removed afterwards.

Whether this machine can isolate is checked once per process, by running the whole recipe
on a canary that checks its own cage (`isolation_problem`). Where it cannot (user namespaces
disabled on the node, a container seccomp profile that forbids them), `run_sandboxed`
raises SandboxUnavailable saying why and how to fix it: it never falls back to running the
code unisolated, unless the caller explicitly allows it (`Limits.allow_unisolated`, from
the spec), and then `Outcome.isolation` says so.
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
NOBODY = 65534
SECRET_DIRS = ("/var/run/secrets", "/run/secrets")
"""Mounted Kubernetes service-account tokens and Secrets: hidden from the program."""


class SandboxUnavailable(RuntimeError):
    """This machine cannot isolate generated code, and the caller did not allow running it
    unisolated."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    open_files: int = 64
    allow_unisolated: bool = False
    """Run where isolation is impossible (only a spec's explicit choice; recorded per run)."""


@dataclass
class Outcome:
    exit_code: int | None
    """None when the run was killed at the wall-clock limit."""
    timed_out: bool
    stdout: str
    stderr: str
    duration_s: float
    isolation: dict[str, bool] = field(default_factory=dict)
    """What held for this run: `namespaces` (own user, mount, network and PID namespaces:
    read-only filesystem, no network, no other processes), `seccomp`, `unprivileged`."""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


CANARY = """
import os, socket
problems = []
if os.getpid() != 1:
    problems.append("the program is not alone in its own PID namespace")
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    problems.append("the program can open internet sockets")
except OSError:
    pass
for path in ("/domainllm-sandbox-probe", "/etc/domainllm-sandbox-probe"):
    try:
        open(path, "w").close()
        problems.append(f"the program can write {path}")
    except OSError:
        pass
try:
    with open("/proc/self/status") as fh:
        caps = next(int(line.split()[1], 16) for line in fh if line.startswith("CapEff"))
    if caps:
        problems.append(f"the program holds capabilities ({caps:#x})")
except OSError:
    pass  # no /proc in the cage (a masked container /proc): nothing to read caps from, and nothing leaks
if os.getuid() == 0:
    problems.append("the program runs as root")
print("caged" if not problems else "; ".join(problems))
"""

HOW_TO_FIX = ("allow unprivileged user namespaces (kernel: user.max_user_namespaces > 0; Ubuntu: "
              "kernel.apparmor_restrict_unprivileged_userns=0; a pod: a seccompProfile that permits unshare/clone with "
              "CLONE_NEWUSER, e.g. Unconfined or the chart's Localhost profile), or run the evaluation in a dedicated "
              "sandbox pod; to run generated code without isolation anyway, set evals.code.allow_unisolated (evals) or "
              "flywheel.label.allow_unisolated (the flywheel's code checks) in the spec")  # fmt: skip


@functools.cache
def _jail() -> tuple[str, str]:
    """(interpreter, jail script) the program's user can run: the jail and its seccomp filter
    copied to a folder anyone may read, and the first interpreter that runs them as that user
    (the caller's may live in a folder closed to it, like a venv under /root)."""
    folder = tempfile.mkdtemp(prefix="domainllm-jail-")
    os.chmod(folder, 0o755)
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("jail.py", "seccomp.py"):
        shutil.copyfile(os.path.join(here, name), os.path.join(folder, name))
        os.chmod(os.path.join(folder, name), 0o644)
    script = os.path.join(folder, "jail.py")
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"]):
        if not os.path.exists(python):
            continue
        try:
            probe = subprocess.run([python, "-c", "print('ok')"], capture_output=True, timeout=30,
                                   **({"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}))  # fmt: skip
        except OSError:  # not executable by that user
            continue
        if probe.stdout.strip() == b"ok":
            return python, script
    raise OSError(f"no Python interpreter the sandbox user can run (tried {sys.executable}, /usr/bin/python3, /usr/local/bin/python3)")


@functools.cache
def isolation_problem() -> str | None:
    """None when this machine isolates generated code (the whole recipe, checked on a
    canary, once per process); else what fails."""
    if shutil.which("unshare") is None:
        return "`unshare` (util-linux) is not installed"
    try:
        out = _run(["python3", "-c", CANARY], {}, Limits(wall_s=30, cpu_s=10, memory_mb=512), None, isolated=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the sandbox could not be started ({exc})"
    if out.stdout.strip() == "caged":
        return None
    detail = out.stdout.strip() or (out.stderr.strip().splitlines() or ["no output"])[-1]
    return f"the isolation check failed (exit {out.exit_code}): {detail}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_sandboxed(command: list[str], files: dict[str, str], limits: Limits | None = None, *, stdin: str | None = None) -> Outcome:
    """Runs `command` (relative paths resolve in the work folder) with `files` written there."""
    limits = limits or Limits()
    problem = isolation_problem()
    if problem is not None and not limits.allow_unisolated:
        raise SandboxUnavailable(f"generated code runs only isolated, and this machine cannot isolate it: {problem}. "
                                 f"To fix: {HOW_TO_FIX}")  # fmt: skip
    return _run(command, files, limits, stdin, isolated=problem is None)


def _run(command: list[str], files: dict[str, str], limits: Limits, stdin: str | None, *, isolated: bool) -> Outcome:
    as_root = os.geteuid() == 0
    workdir = tempfile.mkdtemp(prefix="domainllm-sandbox-")
    try:
        for name, text in files.items():
            path = os.path.join(workdir, name)
            if os.path.dirname(name):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        if as_root:  # the program's user owns its folder, and nothing else
            for root, dirs, names in os.walk(workdir):
                for name in dirs + names:
                    os.chown(os.path.join(root, name), NOBODY, NOBODY, follow_symlinks=False)
            os.chown(workdir, NOBODY, NOBODY)
        python, script = _jail()
        jail = [python, script, "--workdir", workdir, "--cpu-s", str(limits.cpu_s),
                "--memory-mb", str(limits.memory_mb), "--processes", str(limits.processes), "--file-mb",
                str(limits.file_mb), "--open-files", str(limits.open_files)]  # fmt: skip
        if isolated:
            jail = ["unshare", "-r", "--mount", "--net", "--pid", "--fork", "--kill-child", *jail, "--seal",
                    *(arg for path in _hidden() for arg in ("--hide", path))]  # fmt: skip
        t0 = time.monotonic()
        proc = subprocess.Popen([*jail, "--", *command], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                **({"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_root else {}))  # fmt: skip
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
            isolation={"namespaces": isolated, "seccomp": True, "unprivileged": True},
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _hidden() -> list[str]:
    """What the program must not read: the platform's home (artifacts, databases, keys) and
    mounted secrets, except where the jail's interpreter or library lives."""
    from domainllm.env import home

    needed = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(_jail()[1]))]
    out = []
    for path in (str(home()), *SECRET_DIRS):
        real = os.path.realpath(path)
        if os.path.exists(real) and not any(n == real or n.startswith(real + os.sep) for n in needed):
            out.append(real)
    return out

