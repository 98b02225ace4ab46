"""Local deployments on real vLLM (CPU build): a named deployment outlives the object that
started it, is found again from its record, is kept when asked to serve the same version,
and is stopped with everything it started; a model that cannot be served fails fast with
the server's log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from domainllm.serve.local import LocalDeployments
from domainllm.serve.vllm_server import ServerError, healthy
from domainllm.spec.serving import ServingConfig
from tests.lib.evals.vllm_helpers import needs_vllm, tiny_chat_model

pytestmark = [pytest.mark.slow, needs_vllm]


def test_a_deployment_lives_on_until_stopped(home: Path, tmp_path: Path) -> None:
    model = tiny_chat_model(tmp_path / "m")
    cfg = ServingConfig(max_model_len=1024)
    deployment = LocalDeployments("tiny", cfg).start("stable", "1", model)
    try:
        again = LocalDeployments("tiny", cfg)  # another process's view: from the record
        assert again.get("stable") == deployment and again.all() == {"stable": deployment}
        assert again.start("stable", "1", model) == deployment  # same version: kept, not restarted
        assert again.supervisor_state("stable")["state"] == "running"
        reply = httpx.post(f"{deployment.base_url}/completions", json={"model": "tiny", "prompt": "sub hello {", "max_tokens": 4},
                           timeout=30).json()  # fmt: skip
        assert reply["model"] == "tiny" and len(reply["choices"]) == 1
        models = httpx.get(f"{deployment.base_url}/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
    finally:
        LocalDeployments("tiny", cfg).stop("stable")
    assert not healthy(deployment.port) and LocalDeployments("tiny", cfg).get("stable") is None


def test_a_model_that_cannot_be_served_fails_fast(home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    deployments = LocalDeployments("tiny", ServingConfig())
    with pytest.raises(ServerError, match="vLLM exited with code 1 while starting"):
        deployments.start("canary", "2", str(tmp_path / "empty"))
    assert deployments.get("canary") is None
