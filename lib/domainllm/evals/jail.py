"""The inside of the sandbox: `python3 jail.py [options] -- CMD...` (the sandbox copies this
file and `seccomp.py` where the program's user can read them, and runs them with an
interpreter that user can run: the caller's may live in a folder closed to it).

With `--seal` it runs as root of a fresh user namespace (`unshare -r`, no privilege on the
host) that also has its own mount, network and PID namespaces (see `sandbox.py`), and:
1. makes the whole filesystem read-only except the work folder, hides what the program has
   no business reading (`--hide`: the platform's home, mounted secrets), gives it private,
   empty, size-capped `/tmp`, `/var/tmp` and `/dev/shm`, and a `/proc` of its own PID
   namespace (an empty one where the container does not allow mounting proc);
2. enters a nested user namespace where it is `nobody`: the mounts above are locked (the
   program cannot undo them) and exec clears every capability;
3. sets the resource limits, `no_new_privs` and the seccomp filter (`seccomp.py`);
4. becomes the program, with an environment built from scratch (never the caller's).
Without `--seal` (a spec that explicitly allowed unisolated runs) it still sets the limits,
the filter and the clean environment, and moves into the work folder.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import subprocess
import sys

NOBODY = 65534
"""Who the program is inside its own user namespace."""
CLONE_NEWUSER = 0x10000000
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
       "PYTHONNOUSERSITE": "1"}  # fmt: skip
"""The program's whole environment (plus HOME, its folder): no secrets, no PYTHONPATH,
PERL5OPT, LD_PRELOAD or proxies of the caller's."""


def _mount(*args: str, check: bool = True) -> bool:
    done = subprocess.run(["mount", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if check and done.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.returncode == 0


SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
WORK = "/tmp/work"
"""Where the work folder appears inside the sealed filesystem."""
_KEEP = ("/proc", "/sys", "/dev")


def seal_filesystem(workdir: str, hide: list[str] | None = None) -> None:
    """Everything read-only but the work folder (the process's cwd from here on, reachable
    even once another mount hides its path); `hide` emptied; private, empty, size-capped
    scratch folders; the PID namespace's own /proc."""
    _mount("--make-rprivate", "/")  # nothing below propagates back to the host
    _mount("--bind", workdir, workdir)  # its own mount, so it stays writable
    os.chdir(workdir)
    with open("/proc/self/mounts") as fh:
        mounts = [line.split()[1] for line in fh]
    for target in mounts:  # every other mount read-only (bind remounts keep their other flags)
        if target == workdir or target in SCRATCH or target.startswith(_KEEP):
            continue
        _mount("-o", "remount,bind,ro", target, check=False)
    for path in hide or ():
        if os.path.isdir(path) and os.path.commonpath([os.path.abspath(workdir), path]) != path:
            _mount("-t", "tmpfs", "-o", "ro,size=4k,mode=555", "tmpfs", path)
        elif os.path.isfile(path):
            _mount("--bind", "/dev/null", path)
    for scratch in SCRATCH:
        if os.path.isdir(scratch):
            _mount("-t", "tmpfs", "-o", "size=16m,mode=1777", "tmpfs", scratch)
    # the work folder's own path may now be hidden (it lives under /tmp) or untraversable
    # for `nobody`: give it a fixed, reachable one, bound from the cwd that still holds it
    os.mkdir(WORK, 0o755)
    _mount("--no-canonicalize", "--bind", ".", WORK)
    os.chdir(WORK)
    if not _mount("-t", "proc", "proc", "/proc", check=False):  # a container's masked /proc: none rather than the host's
        _mount("-t", "tmpfs", "-o", "ro,size=4k,mode=555", "tmpfs", "/proc")


def enter_unprivileged_userns() -> None:
    """From root of the first user namespace: a nested one where this process is `nobody`.
    The mounts made above are locked for it, and exec as a non-root uid clears every
    capability. (Python 3.11 has no os.unshare.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER) for the program's own user namespace failed")
    for name, value in (("setgroups", "deny"), ("uid_map", f"{NOBODY} {uid} 1"), ("gid_map", f"{NOBODY} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(value)


def set_limits(cpu_s: int, memory_mb: int, processes: int, file_mb: int, open_files: int) -> None:
    mb = 1024 * 1024
    for which, value in ((resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, memory_mb * mb),
                         (resource.RLIMIT_NPROC, processes), (resource.RLIMIT_FSIZE, file_mb * mb),
                         (resource.RLIMIT_NOFILE, open_files), (resource.RLIMIT_CORE, 0)):  # fmt: skip
        resource.setrlimit(which, (value, value))


def main(argv: list[str] | None = None) -> None:
    try:
        from domainllm.evals import seccomp
    except ImportError:  # run as a script beside its copy of seccomp.py
        import seccomp  # type: ignore[no-redef]

    p = argparse.ArgumentParser(prog="domainllm.evals.jail")
    p.add_argument("--workdir", required=True)
    p.add_argument("--seal", action="store_true", help="inside new user, mount, network and PID namespaces: seal everything")
    p.add_argument("--hide", action="append", default=[], help="a path the program must not read (emptied)")
    p.add_argument("--cpu-s", type=int, required=True)
    p.add_argument("--memory-mb", type=int, required=True)
    p.add_argument("--processes", type=int, required=True)
    p.add_argument("--file-mb", type=int, required=True)
    p.add_argument("--open-files", type=int, required=True)
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    try:
        if a.seal:
            seal_filesystem(a.workdir, a.hide)
            enter_unprivileged_userns()
        else:  # the sandbox started it as `nobody` already when its caller was root
            os.chdir(a.workdir)
        set_limits(a.cpu_s, a.memory_mb, a.processes, a.file_mb, a.open_files)
        seccomp.install()
    except OSError as exc:  # never run the program half-sealed
        print(f"sandbox: cannot isolate the program: {exc}", file=sys.stderr)
        raise SystemExit(125) from None
    try:
        os.execvpe(command[0], command, {**ENV, "HOME": os.getcwd()})
    except OSError as exc:
        print(f"sandbox: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        raise SystemExit(127) from None


if __name__ == "__main__":
    main()
