"""Local deployments on real vLLM (CPU build): a model that cannot be served fails fast with
the server's log. (A deployment's life, from start to stop, is tested with the rollouts in
test_rollout.py: every vLLM start costs ~40 s here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from domainllm.serve.local import LocalDeployments
from domainllm.serve.vllm_server import ServerError
from domainllm.spec.serving import ServingConfig
from tests.lib.evals.vllm_helpers import needs_vllm

pytestmark = [pytest.mark.slow, needs_vllm]


def test_a_model_that_cannot_be_served_fails_fast(home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    deployments = LocalDeployments("tiny", ServingConfig())
    with pytest.raises(ServerError, match="vLLM exited with code 1 while starting"):
        deployments.start("canary", "2", str(tmp_path / "empty"))
    assert deployments.get("canary") is None
