"""The vLLM server process: what it is started with, and a clear error (with the end of the
server's log) when there is no serving environment or the model cannot be served. Serving
for real is exercised in tests/lib/evals/test_vllm_backends.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainllm.serve.vllm_server import LAUNCHER, PYTHON_ENV, ServerError, VllmServer
from tests.lib.evals.vllm_helpers import needs_vllm


def test_command_and_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CACHE_ROOT", raising=False)
    server = VllmServer("/models/m", python="/venv/bin/python", served_name="m1", port=8123, extra_args=["--max-model-len", "512"])
    assert server.command() == ["/venv/bin/python", str(LAUNCHER), "serve", "/models/m", "--host", "127.0.0.1", "--port", "8123",
                                "--served-model-name", "m1", "--max-model-len", "512"]  # fmt: skip
    env = server.environment()
    assert env["VLLM_CACHE_ROOT"] == str(home / "cache" / "vllm") and env["VLLM_NO_USAGE_STATS"] == "1"
    assert server.base_url == "http://127.0.0.1:8123/v1" and server.log_path == home / "logs" / "vllm-8123.log"


def test_no_serving_environment_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PYTHON_ENV, raising=False)
    with pytest.raises(ServerError, match=f"run `make serve-env` and set {PYTHON_ENV}"):
        VllmServer("/models/m")


@pytest.mark.slow
@needs_vllm
def test_a_model_that_cannot_be_served_fails_with_the_log(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ServerError, match="vLLM exited with code") as err:
        VllmServer(str(tmp_path / "empty"), log_path=str(tmp_path / "vllm.log")).start()
    assert "empty" in str(err.value) and (tmp_path / "vllm.log").exists()


@needs_vllm
def test_the_launcher_asks_for_amx_permission_where_the_cpu_has_amx() -> None:
    """vLLM's CPU attention runs AMX tile instructions without asking Linux first: on an AMX
    machine a process that has not asked dies by SIGILL at the first tile instruction. The
    launcher asks in every vLLM process; where there is no AMX the request fails harmlessly."""
    import errno
    import subprocess

    from domainllm.capabilities import machine
    from domainllm.serve.vllm_server import vllm_python

    code = ("import ctypes, runpy, sys\nm = runpy.run_path(sys.argv[1])\nperm = ctypes.c_uint64(0)\n"
            "libc = ctypes.CDLL(None)\nlibc.syscall(ctypes.c_long(158), ctypes.c_long(0x1022), ctypes.byref(perm))\n"
            "print(m['AMX_PERMISSION'], (perm.value >> 18) & 1)")  # fmt: skip
    done = subprocess.run([vllm_python(), "-c", code, str(LAUNCHER)], capture_output=True, text=True, timeout=60, check=True)
    answer, permitted = done.stdout.split()
    if "amx_tile" in machine()["flags"]:
        assert (answer, permitted) == ("0", "1"), done.stderr
    else:
        assert answer in ("None", str(errno.EINVAL), str(errno.EOPNOTSUPP)) and permitted == "0", done.stderr
    assert "AMX tile permission refused" not in done.stderr
