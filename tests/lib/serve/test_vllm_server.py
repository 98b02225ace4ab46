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
