"""Stage process lifecycle: die cleanly on SIGTERM, never outlive the launcher."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

PARENT_PID_ENV = "DOMAINLLM_PARENT_PID"
ORPHAN_GRACE_S = 10.0
"""How long an orphaned stage's process group has to end after SIGTERM before SIGKILL."""

# Ignores SIGTERM, says so, then SIGKILLs its whole process group (itself included) after the grace.
_REAPER = 'trap "" TERM; echo ready; sleep "$1"; kill -KILL 0'


def _terminate(signum: int, frame: object) -> None:
    # Unwind normally so context managers run (the MLflow stage run is marked FAILED);
    # nothing unpublished is ever mistaken for finished output.
    raise SystemExit(128 + signum)


def install(orphan_grace_s: float = ORPHAN_GRACE_S) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent and parent.isdigit():
        threading.Thread(target=_watch_parent, args=(int(parent), os.getppid(), orphan_grace_s), daemon=True,
                         name="orphan-watch").start()  # fmt: skip


def _orphaned(launcher: int, parent: int) -> bool:
    """Our parent changed (it died), or the launcher above it is gone: under torchrun our
    parent is torchrun's agent, which has no watch of its own."""
    if os.getppid() != parent:
        return True
    if parent == launcher:
        return False
    try:
        os.kill(launcher, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def _watch_parent(launcher: int, parent: int, grace: float = ORPHAN_GRACE_S) -> None:
    """If the launcher dies without killing us (SIGKILLed worker), end our process group:
    SIGTERM, then SIGKILL after `grace`. `parent` is ours when the watch began: the launcher,
    or what it ran us under (torchrun).

    The SIGTERM reaches this process too, which unwinds and exits, and this thread with it:
    so the SIGKILL comes from a reaper started first in the same group, a shell that ignores
    SIGTERM, sleeps out the grace and kills the group, itself included (it outlives an
    early clean end by at most `grace`). Without a reaper (it could not start) SIGTERM is
    all we can do."""
    while not _orphaned(launcher, parent):
        time.sleep(1.0)
    with contextlib.suppress(OSError):
        reaper = subprocess.Popen(["/bin/sh", "-c", _REAPER, "reaper", str(grace)], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        assert reaper.stdout is not None
        reaper.stdout.readline()  # its trap is set: our SIGTERM will not end it
        reaper.stdout.close()
    os.killpg(os.getpgrp(), signal.SIGTERM)
