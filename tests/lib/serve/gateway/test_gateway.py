"""The gateway in front of real vLLM (CPU build) serving a tiny chat model: plain and
streamed requests succeed through the OpenAI client, every exchange is logged (streams
reassembled, PII scrubbed, request ids as issued), feedback is validated and stored,
metrics count by route, version and status, a broken backend answers 502 and is logged, and
a client that leaves mid-stream is logged as 499 (the stream held open by a pass-through proxy
in front of the same vLLM, so that the leaving never races the end of the answer)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web

from domainllm.serve.gateway.routes import Route, write_routes
from domainllm.serve.vllm_server import VllmServer
from tests.lib.evals.vllm_helpers import needs_vllm
from tests.lib.serve.gateway.helpers import Gateway, records, running_gateway

pytestmark = [pytest.mark.slow, needs_vllm]


@pytest.fixture(scope="module")
def backend(vllm_server: VllmServer) -> VllmServer:
    return vllm_server



class StallingProxy:
    """A test-only HTTP pass-through in front of the real vLLM server, in a thread with its own
    event loop. Requests and non-streamed answers pass as they are. A streamed answer from vLLM
    is forwarded as it comes but held at one point until `release()`: after its first
    server-sent event (`hold_at="first"`: then the rest follows) or after its last one, before
    the end of the HTTP body (`hold_at="end"`: then the end follows). `stream_done` is set once
    the stream is over, whichever way."""

    def __init__(self, upstream: str, hold_at: str, *, hold_timeout_s: float = 120) -> None:
        assert hold_at in ("first", "end")
        self.upstream, self.hold_at, self.hold_timeout_s = upstream.rstrip("/"), hold_at, hold_timeout_s
        self.stream_done = threading.Event()
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._release, self._stop = asyncio.Event(), asyncio.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: self._loop.run_until_complete(self._serve()), name="stalling-proxy", daemon=True)

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        assert self._started.wait(30), "the stalling proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._release.set)

    async def _serve(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:

            async def handle(request: web.Request) -> web.StreamResponse:
                body = await request.read()
                headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization", "x-request-id")}
                async with session.post(self.upstream + request.path.removeprefix("/v1"), data=body, headers=headers) as resp:
                    if not (json.loads(body).get("stream") and resp.status == 200):
                        return web.Response(body=await resp.read(), status=resp.status, content_type=resp.content_type)
                    out = web.StreamResponse(status=200, headers={"Content-Type": resp.headers.get("Content-Type", "text/event-stream")})
                    await out.prepare(request)
                    try:
                        async for n, event in _events(resp):
                            await out.write(event)
                            if n == 0 and self.hold_at == "first":
                                await asyncio.wait_for(self._release.wait(), self.hold_timeout_s)
                        if self.hold_at == "end":
                            await asyncio.wait_for(self._release.wait(), self.hold_timeout_s)
                        await out.write_eof()
                    except ConnectionResetError:  # the gateway hung up on us
                        pass
                    finally:
                        self.stream_done.set()
                    return out

            app = web.Application()
            app.router.add_post("/v1/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[int, bytes]]:
    """The numbered server-sent events of a streamed response, each whole."""
    buffer, n = b"", 0
    async for chunk in resp.content.iter_any():
        buffer += chunk
        while b"\n\n" in buffer:
            event, _, buffer = buffer.partition(b"\n\n")
            yield n, event + b"\n\n"
            n += 1
    if buffer:
        yield n, buffer


def _wait_closed_by_server(client_port: int, server_port: int, timeout: float = 15) -> None:
    """Waits until the server side of the TCP connection from `client_port` is closed too: the
    client's socket is then in TIME_WAIT or gone (Linux, /proc/net/tcp), never FIN_WAIT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        states = [r[3] for r in rows if int(r[1].split(":")[1], 16) == client_port and int(r[2].split(":")[1], 16) == server_port]
        if all(state == "06" for state in states):  # 06: TIME_WAIT
            return
        time.sleep(0.05)
    raise AssertionError(f"the gateway did not close the connection from port {client_port} within {timeout}s")


@pytest.fixture
def gateway(backend: VllmServer, tmp_path: Path) -> Iterator[tuple[Gateway, Path, Path]]:
    routes, logs = tmp_path / "routes.json", tmp_path / "logs"
    write_routes(routes, [Route("stable", backend.base_url, "1", 100), Route("canary", "http://127.0.0.1:9/v1", "2", 0)])
    with running_gateway(routes, logs) as gw:
        yield gw, routes, logs


def test_requests_stream_and_plain_are_served_and_logged(gateway: tuple[Gateway, Path, Path]) -> None:
    from openai import OpenAI

    gw, _, logs = gateway
    url = gw.url
    client = OpenAI(base_url=f"{url}/v1", api_key=gw.keys["user"])
    messages = [{"role": "user", "content": "print join for bob@example.com"}]
    plain = client.chat.completions.with_raw_response.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    rid = plain.headers["x-request-id"]
    assert plain.headers["x-model-version"] == "1"
    answer = plain.parse().choices[0].message.content
    streamed = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == answer  # greedy: the same answer either way
    completion = httpx.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "sub hello {", "max_tokens": 6},
                            headers={"x-domainllm-source": "rollout-probe", **gw.headers("platform")}, timeout=30)  # fmt: skip
    assert completion.status_code == 200
    probe_id = completion.headers["x-request-id"]

    rows = {r["request_id"]: r for r in records(logs, "requests", 3)}
    assert rows[rid]["answers"] == [answer] and rows[rid]["stream"] is False and rows[rid]["route"] == "stable"
    assert "bob@example.com" not in json.dumps(list(rows.values()))  # scrubbed before it was written
    stream_row = next(r for r in rows.values() if r["stream"])
    assert stream_row["answers"] == [text] and stream_row["first_byte_ms"] > 0 and stream_row["finish_reasons"]
    assert rows[probe_id]["prompt"] == "sub hello {" and rows[probe_id]["completion_tokens"] == 6
    assert rows[probe_id]["source"] == "rollout-probe" and rows[rid]["source"] == "user"  # the platform's own traffic

    ok = httpx.post(f"{url}/v1/feedback", json={"request_id": rid, "rating": "down", "preferred": "Use join(', ', @list)."}, timeout=5,
                    headers=gw.headers())  # fmt: skip
    assert ok.status_code == 202
    for bad, why in [({"rating": "up"}, "request_id"), ({"request_id": rid, "rating": "meh"}, "rating"), ({"request_id": rid}, "or both")]:
        resp = httpx.post(f"{url}/v1/feedback", json=bad, timeout=5, headers=gw.headers())
        assert resp.status_code == 400 and why in resp.json()["error"]["message"]
    (fb,) = records(logs, "feedback", 1)
    assert fb["request_id"] == rid and fb["score"] == -1 and fb["preferred"] == "Use join(', ', @list)."

    metrics = httpx.get(f"{gw.admin_url}/metrics", timeout=5).text
    assert 'domainllm_gateway_requests_total{route="stable",status="200",version="1"} 3.0' in metrics
    assert 'domainllm_gateway_feedback_total{rating="down"} 1.0' in metrics


def test_a_broken_backend_answers_502_and_is_logged(gateway: tuple[Gateway, Path, Path], backend: VllmServer) -> None:
    gw, routes, logs = gateway
    url = gw.url
    write_routes(routes, [Route("stable", backend.base_url, "1", 0), Route("canary", "http://127.0.0.1:9/v1", "2", 100)])
    time.sleep(0.6)  # the gateway rereads the table at most every 0.5 s
    resp = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}, timeout=30,
                      headers=gw.headers())  # fmt: skip
    assert resp.status_code == 502 and "canary backend did not answer" in resp.json()["error"]["message"]
    assert resp.headers["x-model-version"] == "2"
    (row,) = records(logs, "requests", 1)
    assert row["status"] == 502 and row["route"] == "canary" and row["answers"] == []
    assert 'route="canary",status="502",version="2"} 1.0' in httpx.get(f"{gw.admin_url}/metrics", timeout=5).text
    assert httpx.post(f"{url}/v1/chat/completions", content=b"not json", timeout=5, headers=gw.headers()).status_code == 400


@pytest.fixture(params=["first", "end"])
def stalled_gateway(backend: VllmServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Gateway, Path, StallingProxy]]:
    """The gateway with its one route through a `StallingProxy` in front of the real vLLM, which
    holds the stream after its first event or before its end."""
    routes, logs = tmp_path / "routes.json", tmp_path / "logs"
    with StallingProxy(backend.base_url, request.param) as proxy:
        write_routes(routes, [Route("stable", proxy.base_url, "1", 100)])
        with running_gateway(routes, logs) as gw:
            yield gw, logs, proxy


def test_a_client_that_leaves_mid_stream_is_logged_as_such(stalled_gateway: tuple[Gateway, Path, StallingProxy]) -> None:
    """vLLM's answer is held open (after its first event, or after its last one before the end
    of the body) until the client has left *and* the gateway has closed its side of that
    connection; only then does the answer go on: the gateway's next write, or its end of the
    stream, meets a closed connection, however fast the machine. Gone before the last event:
    499; after it, the client had its whole answer: 200, and the answer is in the log."""
    gw, logs, proxy = stalled_gateway
    url = gw.url
    body = {"model": "tiny", "prompt": "sub hello {", "max_tokens": 64, "ignore_eos": True, "stream": True}
    with httpx.Client(timeout=30, headers=gw.headers()) as client, client.stream("POST", f"{url}/v1/completions", json=body) as resp:
        assert resp.status_code == 200
        client_port = resp.extensions["network_stream"].get_extra_info("client_addr")[1]
        received = b""
        for chunk in resp.iter_raw():
            received += chunk
            if proxy.hold_at == "first" or b"data: [DONE]" in received:
                break  # the client hangs up: after the first event, or after the last one
        assert received.startswith(b"data:") and not proxy.stream_done.is_set()
        rid = resp.headers["x-request-id"]
    _wait_closed_by_server(client_port, int(url.rsplit(":", 1)[1]))
    proxy.release()
    (row,) = [r for r in records(logs, "requests", 1) if r["request_id"] == rid]
    if proxy.hold_at == "first":
        assert row["status"] == 499 and row["error"] == "the client closed the connection" and row["stream"]
    else:  # it had every event, [DONE] included (the OpenAI SDK closes right then): answered, and logged with its answer
        assert row["status"] == 200 and row["error"] is None and row["stream"] and row["answers"][0], row
    assert proxy.stream_done.wait(30)
    ok = httpx.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 2}, timeout=30, headers=gw.headers())
    assert ok.status_code == 200  # the gateway carries on
