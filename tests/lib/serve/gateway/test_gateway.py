"""The gateway in front of real vLLM (CPU build) serving a tiny chat model: plain and
streamed requests succeed through the OpenAI client, every exchange is logged (streams
reassembled, PII scrubbed, request ids as returned), feedback is validated and stored,
metrics count by route, version and status, and a broken backend answers 502 and is logged."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from domainllm.serve.gateway.routes import Route, write_routes
from domainllm.serve.vllm_server import VllmServer
from tests.lib.evals.vllm_helpers import needs_vllm
from tests.lib.serve.gateway.helpers import running_gateway

pytestmark = [pytest.mark.slow, needs_vllm]


@pytest.fixture(scope="module")
def backend(vllm_server: VllmServer) -> VllmServer:
    return vllm_server


def _records(root: Path, kind: str, n: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [json.loads(line) for f in sorted(root.glob(f"{kind}/date=*/hour=*/*.jsonl")) for line in f.read_text().splitlines()]
        if len(rows) >= n:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{kind}: fewer than {n} records after {timeout}s")


@pytest.fixture
def gateway(backend: VllmServer, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    routes, logs = tmp_path / "routes.json", tmp_path / "logs"
    write_routes(routes, [Route("stable", backend.base_url, "1", 100), Route("canary", "http://127.0.0.1:9/v1", "2", 0)])
    with running_gateway(routes, logs) as url:
        yield url, routes, logs


def test_requests_stream_and_plain_are_served_and_logged(gateway: tuple[str, Path, Path]) -> None:
    from openai import OpenAI

    url, _, logs = gateway
    client = OpenAI(base_url=f"{url}/v1", api_key="none")
    messages = [{"role": "user", "content": "print join for bob@example.com"}]
    plain = client.chat.completions.with_raw_response.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    rid = plain.headers["x-request-id"]
    assert plain.headers["x-model-version"] == "1"
    answer = plain.parse().choices[0].message.content
    streamed = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == answer  # greedy: the same answer either way
    completion = httpx.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "sub hello {", "max_tokens": 6},
                            headers={"x-request-id": "client-chosen-1", "x-domainllm-source": "rollout-probe"}, timeout=30)  # fmt: skip
    assert completion.status_code == 200 and completion.headers["x-request-id"] == "client-chosen-1"

    rows = {r["request_id"]: r for r in _records(logs, "requests", 3)}
    assert rows[rid]["answers"] == [answer] and rows[rid]["stream"] is False and rows[rid]["route"] == "stable"
    assert "bob@example.com" not in json.dumps(list(rows.values()))  # scrubbed before it was written
    stream_row = next(r for r in rows.values() if r["stream"])
    assert stream_row["answers"] == [text] and stream_row["first_byte_ms"] > 0 and stream_row["finish_reasons"]
    assert rows["client-chosen-1"]["prompt"] == "sub hello {" and rows["client-chosen-1"]["completion_tokens"] == 6
    assert rows["client-chosen-1"]["source"] == "rollout-probe" and rows[rid]["source"] == "user"  # the platform's own traffic

    ok = httpx.post(f"{url}/v1/feedback", json={"request_id": rid, "rating": "down", "preferred": "Use join(', ', @list)."}, timeout=5)
    assert ok.status_code == 202
    for bad, why in [({"rating": "up"}, "request_id"), ({"request_id": rid, "rating": "meh"}, "rating"), ({"request_id": rid}, "or both")]:
        resp = httpx.post(f"{url}/v1/feedback", json=bad, timeout=5)
        assert resp.status_code == 400 and why in resp.json()["error"]["message"]
    (fb,) = _records(logs, "feedback", 1)
    assert fb["request_id"] == rid and fb["score"] == -1 and fb["preferred"] == "Use join(', ', @list)."

    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    assert 'domainllm_gateway_requests_total{route="stable",status="200",version="1"} 3.0' in metrics
    assert 'domainllm_gateway_feedback_total{rating="down"} 1.0' in metrics


def test_a_broken_backend_answers_502_and_is_logged(gateway: tuple[str, Path, Path], backend: VllmServer) -> None:
    url, routes, logs = gateway
    write_routes(routes, [Route("stable", backend.base_url, "1", 0), Route("canary", "http://127.0.0.1:9/v1", "2", 100)])
    time.sleep(0.6)  # the gateway rereads the table at most every 0.5 s
    resp = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert resp.status_code == 502 and "canary backend did not answer" in resp.json()["error"]["message"]
    assert resp.headers["x-model-version"] == "2"
    (row,) = _records(logs, "requests", 1)
    assert row["status"] == 502 and row["route"] == "canary" and row["answers"] == []
    assert 'route="canary",status="502",version="2"} 1.0' in httpx.get(f"{url}/metrics", timeout=5).text
    assert httpx.post(f"{url}/v1/chat/completions", content=b"not json", timeout=5).status_code == 400


def test_a_client_that_leaves_mid_stream_is_logged_as_such(gateway: tuple[str, Path, Path]) -> None:
    url, _, logs = gateway
    # as long as the context allows (1024): the answer must still be streaming when the client leaves
    body = {"model": "tiny", "prompt": "sub hello {", "max_tokens": 1000, "ignore_eos": True, "stream": True}
    with httpx.Client(timeout=30) as client, client.stream("POST", f"{url}/v1/completions", json=body) as resp:
        assert resp.status_code == 200
        next(resp.iter_raw())  # the first events arrive, then the client hangs up
        rid = resp.headers["x-request-id"]
    (row,) = [r for r in _records(logs, "requests", 1) if r["request_id"] == rid]
    assert row["status"] == 499 and row["error"] == "the client closed the connection" and row["stream"]
    ok = httpx.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 2}, timeout=30)
    assert ok.status_code == 200  # the gateway carries on
