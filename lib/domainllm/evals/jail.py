"""The inside of the sandbox: `python -m domainllm.evals.jail [options] -- CMD...`.

Runs as the first process of fresh mount, network and PID namespaces when the sandbox could
create them (see `sandbox.py`). It makes the whole filesystem read-only except the work
folder, gives the program private empty `/tmp`, `/var/tmp` and `/dev/shm`, sets the resource
limits, drops root to an unprivileged user, and then becomes the program. Without
namespaces it still sets the limits, drops root and moves into the work folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys

NOBODY = 65534


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
WORK = "/tmp/work"
"""Where the work folder appears inside the sealed filesystem."""
_KEEP = ("/proc", "/sys", "/dev")


def seal_filesystem(workdir: str) -> None:
    """Everything read-only but the work folder (the process's cwd from here on, reachable
    even once another mount hides its path); private, empty, size-capped scratch folders."""
    _mount("--make-rprivate", "/")  # nothing below propagates back to the host
    _mount("--bind", workdir, workdir)  # its own mount, so it stays writable
    os.chdir(workdir)
    with open("/proc/self/mounts") as fh:
        mounts = [line.split()[1] for line in fh]
    for target in mounts:  # every other mount read-only (bind remounts keep their other flags)
        if target == workdir or target in SCRATCH or target.startswith(_KEEP):
            continue
        subprocess.run(["mount", "-o", "remount,bind,ro", target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for scratch in SCRATCH:
        if os.path.isdir(scratch):
            _mount("-t", "tmpfs", "-o", "size=16m,mode=1777", "tmpfs", scratch)
    # the work folder's own path may now be hidden (it lives under /tmp) or untraversable
    # for `nobody`: give it a fixed, reachable one, bound from the cwd that still holds it
    os.mkdir(WORK, 0o755)
    _mount("--no-canonicalize", "--bind", ".", WORK)
    os.chdir(WORK)
    _mount("-t", "proc", "proc", "/proc")  # the new PID namespace's processes only


def set_limits(cpu_s: int, memory_mb: int, processes: int, file_mb: int, open_files: int) -> None:
    mb = 1024 * 1024
    for which, value in ((resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, memory_mb * mb),
                         (resource.RLIMIT_NPROC, processes), (resource.RLIMIT_FSIZE, file_mb * mb),
                         (resource.RLIMIT_NOFILE, open_files), (resource.RLIMIT_CORE, 0)):  # fmt: skip
        resource.setrlimit(which, (value, value))


def drop_root() -> None:
    """Root ignores RLIMIT_NPROC and file permissions: run as `nobody` instead, owning the
    work folder (the cwd: found relative to it, whatever the permissions above it)."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk("."):
        for name in dirs + files:
            os.chown(os.path.join(root, name), NOBODY, NOBODY, follow_symlinks=False)
    os.chown(".", NOBODY, NOBODY)
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="domainllm.evals.jail")
    p.add_argument("--workdir", required=True)
    p.add_argument("--seal", action="store_true", help="inside new namespaces: seal the filesystem")
    p.add_argument("--cpu-s", type=int, required=True)
    p.add_argument("--memory-mb", type=int, required=True)
    p.add_argument("--processes", type=int, required=True)
    p.add_argument("--file-mb", type=int, required=True)
    p.add_argument("--open-files", type=int, required=True)
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if a.seal:
        seal_filesystem(a.workdir)
    else:
        os.chdir(a.workdir)
    drop_root()
    set_limits(a.cpu_s, a.memory_mb, a.processes, a.file_mb, a.open_files)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.getcwd(), "TMPDIR": "/tmp", "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"sandbox: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        raise SystemExit(127) from None


if __name__ == "__main__":
    main()
