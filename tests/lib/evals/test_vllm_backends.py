"""Generation and judging through real vLLM (the CPU build, from the serving environment):
the server backend gives the transformers backend's results in the same format, the judge
reads scores from a vLLM-served model held to the JSON schema, and the in-process engine
backend works where vLLM is importable."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from domainllm.evals.backends import open_generator
from domainllm.evals.endpoint import EndpointGenerator, make_client
from domainllm.evals.generate import TransformersGenerator
from domainllm.evals.judge import Judge
from domainllm.evals.suites import judge_rows, load_judge_items
from domainllm.serve.vllm_server import VllmServer, vllm_python
from domainllm.spec.evals import Decoding
from tests.lib.evals.vllm_helpers import needs_vllm

pytestmark = [pytest.mark.slow, needs_vllm]

PROMPTS = ["sub hello {", "my %h = (", [{"role": "user", "content": "print join"}]]


@pytest.fixture(scope="module")
def server(vllm_server: VllmServer) -> VllmServer:
    return vllm_server


@pytest.fixture(scope="module")
def model(server: VllmServer) -> str:
    return server.model_path


def test_server_backend_matches_transformers(model: str, server: VllmServer) -> None:
    via_vllm = EndpointGenerator(make_client(server.base_url), "tiny")
    local = TransformersGenerator(model)
    greedy = Decoding(max_new_tokens=16, stop=("}",))
    assert via_vllm(PROMPTS, greedy) == local(PROMPTS, greedy)
    sampled = via_vllm(PROMPTS[:2], Decoding(temperature=1.0, n=3, max_new_tokens=8, top_k=20, repetition_penalty=1.1))
    assert [len(s) for s in sampled] == [3, 3] and all(isinstance(t, str) for s in sampled for t in s)


def test_judge_scores_every_answer_through_vllm(model: str, server: VllmServer) -> None:
    items = load_judge_items("builtin:domain-questions")[:4]
    judge = Judge(make_client(server.base_url), "tiny", ("accuracy", "safety"))
    rows = judge_rows("candidate", TransformersGenerator(model), "domain", items, Decoding(max_new_tokens=12), judge)
    assert len(rows) == 8 and {r["metric"] for r in rows} == {"judge.accuracy", "judge.safety"}
    assert all(1 <= r["score"] <= 5 for r in rows), [json.loads(r["detail"])["error"] for r in rows]


def test_vllm_backend_runs_a_server_for_the_model_and_stops_it(model: str) -> None:
    with open_generator("vllm", model) as generate:
        assert generate.name == "vllm-server"
        out = generate(PROMPTS[:1], Decoding(max_new_tokens=8))
        url = generate.server.base_url
    assert len(out) == 1 and len(out[0]) == 1
    import httpx

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}models", timeout=2)


def test_engine_backend_in_the_serving_environment(model: str) -> None:
    """The in-process engine (how the GPU eval image generates) gives the same greedy results."""
    code = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).parents[3] / 'lib')!r})
from domainllm.evals.vllm_engine import VllmEngineGenerator
from domainllm.spec.evals import Decoding
g = VllmEngineGenerator({model!r})
print("RESULT" + json.dumps(g({PROMPTS!r}, Decoding(max_new_tokens=16, stop=("}}",)))))
"""
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}
    proc = subprocess.run([vllm_python(), "-c", code], capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, proc.stderr[-3000:]
    local = TransformersGenerator(model)(PROMPTS, Decoding(max_new_tokens=16, stop=("}",)))
    assert json.loads(lines[0][len("RESULT") :]) == local
