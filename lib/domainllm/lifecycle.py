"""Stage process lifecycle: die cleanly on SIGTERM, never outlive the launcher."""

from __future__ import annotations

import os
import signal
import threading
import time

PARENT_PID_ENV = "DOMAINLLM_PARENT_PID"


def _terminate(signum: int, frame: object) -> None:
    # Unwind normally so context managers run (the MLflow stage run is marked FAILED);
    # nothing unpublished is ever mistaken for finished output.
    raise SystemExit(128 + signum)


def install() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent and parent.isdigit():
        threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True, name="orphan-watch").start()


def _watch_parent(parent: int) -> None:
    """If the launcher dies without killing us (SIGKILLed worker), end our process group."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.killpg(os.getpgrp(), signal.SIGTERM)
            time.sleep(10.0)
            os.killpg(os.getpgrp(), signal.SIGKILL)
