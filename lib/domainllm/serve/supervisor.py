"""`python -m domainllm.serve.supervisor --state FILE -- COMMAND...`: keeps a server process
running. It starts COMMAND in its own process group, restarts it when it exits on its own
(after 1, 2, 4 ... s, at most `--max-restarts` times within `--window-s`), and on SIGTERM,
SIGHUP or SIGINT stops it (SIGTERM to its group, SIGKILL after the grace period) and exits 0. The
state file (JSON, replaced atomically) says what runs: the supervisor's and the child's pid,
restarts, the last exit code, and `state` (`running`, `backoff`, `failed`, `stopped`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from domainllm.lifecycle import PARENT_PID_ENV


def write_state(path: Path, **state) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**state, "supervisor_pid": os.getpid(), "updated_at": time.time()}))
    os.replace(tmp, path)


def alive(pid: int) -> bool:
    """Whether process `pid` exists (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` is still running (zombies, exited but not yet reaped,
    do not count: `killpg(pgid, 0)` would still find them)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # reap the leader if it is our child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group(pid: int, grace_s: float) -> None:
    """SIGTERM to the process group `pid`, SIGKILL to what is left after `grace_s`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not group_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def supervise(command: list[str], state: Path, *, max_restarts: int, window_s: float, grace_s: float) -> int:
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _stop)
    restarts: list[float] = []
    last_exit: int | None = None
    while not stopping:
        child = subprocess.Popen(command, start_new_session=True)
        write_state(state, state="running", child_pid=child.pid, restarts=len(restarts), last_exit=last_exit)
        while child.poll() is None and not stopping:
            time.sleep(0.2)
        if stopping:
            stop_group(child.pid, grace_s)
            break
        last_exit = child.returncode
        stop_group(child.pid, 1)  # whatever it left behind
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < window_s]
        if len(restarts) >= max_restarts:
            print(f"supervisor: the server exited with code {last_exit}, {len(restarts)} restarts in {window_s:.0f}s: giving up",
                  file=sys.stderr, flush=True)  # fmt: skip
            write_state(state, state="failed", child_pid=None, restarts=len(restarts), last_exit=last_exit)
            return 1
        delay = 2 ** len(restarts)
        print(f"supervisor: the server exited with code {last_exit}; restarting in {delay}s", file=sys.stderr, flush=True)
        write_state(state, state="backoff", child_pid=None, restarts=len(restarts), last_exit=last_exit)
        restarts.append(now)
        for _ in range(delay * 5):
            if stopping:
                break
            time.sleep(0.2)
    write_state(state, state="stopped", child_pid=None, restarts=len(restarts), last_exit=last_exit)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="domainllm.serve.supervisor", description=__doc__)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--max-restarts", type=int, default=3)
    parser.add_argument("--window-s", type=float, default=300)
    parser.add_argument("--grace-s", type=float, default=20)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the server command after --")
    # The server outlives whoever started it (a stage task): a domainllm command under it must
    # not follow the launcher's orphan watch, or it ends itself as soon as it starts.
    os.environ.pop(PARENT_PID_ENV, None)
    return supervise(command, args.state, max_restarts=args.max_restarts, window_s=args.window_s, grace_s=args.grace_s)


if __name__ == "__main__":
    sys.exit(main())
