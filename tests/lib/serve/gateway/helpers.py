"""The gateway as the tests run it: `domainllm serve gateway` in a child process with its own
keys (two users and the platform) and signing secret, ready when its /health answers (user
and admin ports), terminated afterwards. `stub_backend` is an OpenAI-shaped stand-in for vLLM
where a test is about the gateway alone (auth, limits, ids): it answers at once with a text
made from the prompt, streamed or not, with token usage."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiohttp import web

from domainllm.serve.gateway.auth import add_key
from domainllm.serve.gateway.ids import new_signing_secret
from domainllm.serve.vllm_server import free_port

ROLES = {"user": "user", "other": "user", "platform": "platform"}


@dataclass(frozen=True)
class Gateway:
    url: str
    admin_url: str
    keys: dict[str, str]
    """Who -> key: `user` and `other` (two users), `platform`."""
    keys_file: Path
    signing_secret: Path

    def headers(self, who: str = "user") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def client(self, who: str = "user", timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(who), timeout=timeout)


def records(root: Path, kind: str, n: int, timeout: float = 60) -> list[dict]:
    """At least `n` records of `kind` (`requests`, `feedback`) the gateway's writer wrote."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [json.loads(line) for f in sorted(root.glob(f"{kind}/date=*/hour=*/*.jsonl")) for line in f.read_text().splitlines()]
        if len(rows) >= n:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{kind}: fewer than {n} records after {timeout}s")


@contextmanager
def running_gateway(routes: Path, logs: Path, start_timeout_s: float = 60, *, policy: dict | None = None,
                    limits: dict[str, dict] | None = None, env: dict[str, str] | None = None) -> Iterator[Gateway]:  # fmt: skip
    """`policy`: serving.gateway fields; `limits`: a key's own limits by who."""
    secrets_dir = routes.parent / f"gateway-secrets-{routes.stem}"
    keys_file, signing = secrets_dir / "keys.json", secrets_dir / "signing.secret"
    keys = {who: add_key(keys_file, who, role=role, limits=(limits or {}).get(who)) for who, role in ROLES.items()}
    new_signing_secret(signing)
    port, admin_port = free_port(), free_port()
    args = [sys.executable, "-m", "domainllm", "serve", "gateway", "--routes", str(routes), "--log-root", str(logs), "--port", str(port),
            "--admin-port", str(admin_port), "--keys", str(keys_file), "--signing-secret", str(signing)]  # fmt: skip
    if policy:
        (secrets_dir / "policy.json").write_text(json.dumps(policy))
        args += ["--policy", str(secrets_dir / "policy.json")]
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})})
    gw = Gateway(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", keys, keys_file, signing)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                if httpx.get(f"{gw.url}/health", timeout=1).status_code == 200 and httpx.get(f"{gw.admin_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.2)
        yield gw
    finally:
        proc.terminate()
        proc.wait(30)


def _answer(req: dict) -> str:
    if "messages" in req:
        last = req["messages"][-1].get("content")
        text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last or [])
    else:
        text = req["prompt"] if isinstance(req["prompt"], str) else req["prompt"][0]
    return f"You asked: {text}"


@contextmanager
def stub_backend() -> Iterator[tuple[str, list[dict]]]:
    """(base URL ending in /v1, the requests it received with their headers)."""
    seen: list[dict] = []
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()
    box: dict[str, str] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        req = await request.json()
        seen.append({"path": request.path, "body": req, "authorization": request.headers.get("Authorization")})
        chat = request.path.endswith("/chat/completions")
        text = _answer(req)
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        if not req.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}} if chat else {"index": 0, "text": text}
            return web.json_response({"id": "x", "model": req["model"], "choices": [{**choice, "finish_reason": "stop"}], "usage": usage})
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        for i, piece in enumerate(text.split(" ")):
            piece = piece if i == 0 else " " + piece
            choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
            await out.write(f"data: {json.dumps({'id': 'x', 'choices': [choice]})}\n\n".encode())
        await out.write(f"data: {json.dumps({'id': 'x', 'choices': [{'index': 0, 'delta': {}, 'text': '', 'finish_reason': 'stop'}]})}\n\n".encode())
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "tiny"}]})

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/{tail:.*}", handle)
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        box["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield box["url"], seen
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
