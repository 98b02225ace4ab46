"""What our code makes of a server that dies at its first request (a stand-in for vLLM that
kills itself by SIGILL, with faulthandler's report, as a kernel with an unsupported
instruction kills vLLM's worker; the same death of real vLLM is tested in test_check.py and
the quantize stages' test): a deployment refuses to start and leaves nothing running, with
the signal and the frame in its error, and an eval through the vllm-server backend fails with
the same evidence instead of an HTTP client's traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from domainllm.evals.backends import open_generator
from domainllm.evals.endpoint import EndpointError
from domainllm.serve.local import LocalDeployments
from domainllm.serve.vllm_server import ServerError
from domainllm.spec.evals import Decoding
from domainllm.spec.serving import ServingConfig
from tests.lib.evals.vllm_helpers import descendants


def test_a_deployment_that_cannot_answer_is_not_started(home: Path, dying_vllm: Path) -> None:
    deployments = LocalDeployments("tiny", ServingConfig(start_timeout_s=60))
    with pytest.raises(ServerError) as err:
        deployments.start("stable", "1", "/models/tiny")
    message = str(err.value)
    assert "could not answer a first request" in message and "SIGILL (illegal instruction" in message
    assert "dying_server.py" in message and "in kernel" in message  # the frame that died
    assert deployments.all() == {} and not list((home / "serve" / "tiny" / "deployments").glob("*.supervisor"))
    assert [cmd for _, cmd in descendants(os.getpid()) if "dying_server" in cmd] == []


def test_an_eval_whose_server_dies_says_why(home: Path, dying_vllm: Path) -> None:
    with pytest.raises(EndpointError) as err, open_generator("vllm", "/models/tiny") as generate:
        generate(["sub hello {"], Decoding(max_new_tokens=4))
    message = str(err.value)
    assert message.startswith("vLLM's engine died: SIGILL (illegal instruction") and "in kernel" in message
    assert "evals.backend transformers" in message and "Traceback" not in message
