"""The gateway as the tests run it: `domainllm serve gateway` in a child process, ready when
its /health answers, terminated afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from domainllm.serve.vllm_server import free_port


@contextmanager
def running_gateway(routes: Path, logs: Path, start_timeout_s: float = 60) -> Iterator[str]:
    """The gateway's base URL (`http://127.0.0.1:PORT`)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "domainllm", "serve", "gateway", "--routes", str(routes), "--log-root", str(logs),
                             "--port", str(port)], env={**os.environ})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
