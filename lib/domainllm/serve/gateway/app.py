"""The gateway's HTTP side (aiohttp: one library for the server and the pooled, streaming
client to vLLM). Per request: read the body, pick a route by weight, forward the bytes as
they are, stream the answer back as it comes, then hand the exchange to the log store (a
queue put) and the metrics. Responses carry `x-request-id` (the id feedback refers to) and
`x-model-version`.

With retrieval configured (`augment.json` beside the routes), a request is first routed by
intent and augmented with knowledge-base chunks (in a worker thread: embedding and search
block); the answer then carries `citations` (in the first event of a stream) and the headers
`x-domainllm-intent` and `x-domainllm-retrieval`. A request's `"retrieval": false|true|{...}`
field overrides its route's policy and is never forwarded.

Endpoints: `POST /v1/chat/completions`, `POST /v1/completions` (streaming or not),
`GET /v1/models`, `POST /v1/feedback`, `GET /metrics` (Prometheus), `GET /health`."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from domainllm.serve.gateway.augment import Augmented, AugmentError, AugmentTable, parse_override
from domainllm.serve.gateway.exchange import SOURCE_HEADER, Exchange
from domainllm.serve.gateway.metrics import GatewayMetrics
from domainllm.serve.gateway.routes import RoutesError, RouteTable
from domainllm.serve.gateway.store import LogStore

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
SOURCE = re.compile(r"[a-z0-9-]{1,32}")
RATINGS = {"up": 1, "down": -1}
TABLE, STORE, METRICS, SESSION = (web.AppKey(n, t) for n, t in
                                  (("table", RouteTable), ("store", LogStore), ("metrics", GatewayMetrics), ("session", aiohttp.ClientSession)))  # fmt: skip
AUGMENT = web.AppKey("augment", AugmentTable)


def _augment(app: web.Application, endpoint: str, req: dict[str, Any]) -> Augmented:
    """Runs in a worker thread: the request as it goes to the model (our fields removed)."""
    augmenter = app[AUGMENT].get() if AUGMENT in app else None
    if augmenter is None:
        if "retrieval" in req:
            parse_override(req["retrieval"])  # a malformed field is still the client's error
        return Augmented({k: v for k, v in req.items() if k != "retrieval"})
    return augmenter.augment(endpoint, req)


def _with_citations(payload: bytes, citations: list[dict[str, Any]]) -> bytes:
    """A JSON response with `citations` added (unchanged when it is not a JSON object)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(data, dict):
        return payload
    data["citations"] = citations
    return json.dumps(data).encode()


def _cite_first_event(buffer: bytes, citations: list[dict[str, Any]]) -> bytes:
    """The stream's first server-sent event with `citations` added to its JSON."""
    head, sep, rest = buffer.partition(b"\n\n")
    if not head.startswith(b"data:") or head[5:].strip() == b"[DONE]":
        return buffer
    return b"data: " + _with_citations(head[5:].strip(), citations) + sep + rest


def _error(status: int, message: str, request_id: str | None = None) -> web.Response:
    headers = {"x-request-id": request_id} if request_id else None
    return web.json_response({"error": {"message": message, "type": "gateway_error", "code": status}}, status=status, headers=headers)


async def _proxy(request: web.Request, endpoint: str, path: str) -> web.StreamResponse:
    app = request.app
    t0 = time.perf_counter()
    received = time.time()
    request_id = request.headers.get("x-request-id", "")
    if not REQUEST_ID.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    body = await request.read()
    try:
        req = json.loads(body)
        if not isinstance(req, dict):
            raise ValueError
    except ValueError:
        return _error(400, "the request body must be a JSON object", request_id)
    try:
        augmented = await asyncio.get_running_loop().run_in_executor(None, _augment, app, endpoint, req)
    except AugmentError as exc:
        return _error(400, str(exc), request_id)
    except Exception as exc:  # retrieval is an extra: a broken index must not take answers down
        log.exception("gateway: retrieval failed; answering without it")
        augmented = Augmented({k: v for k, v in req.items() if k != "retrieval"})
        augmented.error = f"{type(exc).__name__}: retrieval failed"
    if augmented.request != req:
        body = json.dumps(augmented.request).encode()
    try:
        route = app[TABLE].pick()
    except RoutesError as exc:
        return _error(503, str(exc), request_id)
    stream = bool(req.get("stream"))
    source = request.headers.get(SOURCE_HEADER, "user")
    exchange = Exchange(request_id, received, endpoint, route.name, route.version, req, stream=stream,
                        source=source if SOURCE.fullmatch(source) else "user")  # fmt: skip
    exchange.extra.update(augmented.log_fields())
    headers = {"Content-Type": "application/json", "x-request-id": request_id}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    reply_headers = {"x-request-id": request_id, "x-model-version": route.version, "x-domainllm-intent": augmented.intent,
                     "x-domainllm-retrieval": "on" if augmented.retrieval else "off"}  # fmt: skip
    cite = augmented.citations if augmented.retrieval else None
    out: web.StreamResponse | None = None
    chunks: list[bytes] = []
    answered, tail = False, b""  # the stream's last event ([DONE]) reached the client: its answer is whole
    try:
        async with app[SESSION].post(route.base_url + path, data=body, headers=headers) as resp:
            exchange.status = resp.status
            if stream and resp.status == 200:
                out = web.StreamResponse(status=200, headers={**reply_headers, "Content-Type": resp.headers.get("Content-Type", "text/event-stream")})
                await out.prepare(request)
                pending = b""  # with citations: held until the first event is whole
                async for chunk in resp.content.iter_any():
                    if exchange.first_byte_ms is None:
                        exchange.first_byte_ms = (time.perf_counter() - t0) * 1000
                    chunks.append(chunk)
                    if cite is not None:
                        pending += chunk
                        if b"\n\n" not in pending:
                            continue
                        chunk, pending, cite = _cite_first_event(pending, cite), b"", None
                    try:
                        await out.write(chunk)
                    except ConnectionResetError:  # the client hung up (aiohttp's ClientConnectionResetError is one)
                        exchange.status, exchange.error = 499, "the client closed the connection"
                        break
                    tail = (tail + chunk)[-32:]  # [DONE] may come split over two reads
                    answered = answered or b"data: [DONE]" in tail
                else:
                    try:
                        await out.write_eof()
                    except ConnectionResetError:  # gone before the end of the body: the client's doing, not the
                        # backend's; after [DONE] (where the OpenAI SDK closes) it had its whole answer
                        if not answered:
                            exchange.status, exchange.error = 499, "the client closed the connection"
            else:
                exchange.body = await resp.read()
                payload = _with_citations(exchange.body, cite) if cite is not None and resp.status == 200 else exchange.body
                out = web.Response(body=payload, status=resp.status, headers=reply_headers,
                                   content_type=resp.content_type or "application/json")  # fmt: skip
    except (TimeoutError, aiohttp.ClientError) as exc:  # the backend failed: before the answer, or in the middle of a stream
        exchange.status, exchange.error = 502, f"{type(exc).__name__}: backend {route.name} unreachable or failed"
        if out is None or not out.prepared:
            out = _error(502, f"the {route.name} backend did not answer ({type(exc).__name__})", request_id)
            out.headers["x-model-version"] = route.version
    except asyncio.CancelledError:  # the client went away and the server cancelled the handler
        if not answered:  # after the last event it had its whole answer: logged as answered, answer included
            exchange.status, exchange.error = 499, "the client closed the connection"
        raise
    finally:
        if stream and chunks:
            exchange.body = b"".join(chunks)
        exchange.latency_ms = (time.perf_counter() - t0) * 1000
        app[METRICS].observe(exchange)
        app[STORE].submit(exchange)
    return out


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "chat.completions", "/chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "completions", "/completions")


async def models(request: web.Request) -> web.Response:
    try:
        route = request.app[TABLE].pick()
    except RoutesError as exc:
        return _error(503, str(exc))
    try:
        async with request.app[SESSION].get(route.base_url + "/models") as resp:
            return web.Response(body=await resp.read(), status=resp.status, content_type="application/json")
    except (TimeoutError, aiohttp.ClientError) as exc:
        return _error(502, f"the {route.name} backend did not answer ({type(exc).__name__})")


async def feedback(request: web.Request) -> web.Response:
    """`{"request_id", "rating": "up"|"down", "preferred": "a better answer"?, "comment"?}`."""
    try:
        entry: Any = await request.json()
    except ValueError:
        return _error(400, "the feedback body must be a JSON object")
    if not isinstance(entry, dict) or not isinstance(entry.get("request_id"), str) or not REQUEST_ID.fullmatch(entry["request_id"]):
        return _error(400, "feedback needs `request_id`: the x-request-id header of the answer it is about")
    rating, preferred = entry.get("rating"), entry.get("preferred")
    if rating is None and preferred is None:
        return _error(400, "feedback needs `rating` (up or down) or `preferred` (a better answer), or both")
    if rating is not None and rating not in RATINGS:
        return _error(400, "`rating` must be \"up\" or \"down\"")
    if preferred is not None and (not isinstance(preferred, str) or not preferred.strip()):
        return _error(400, "`preferred` must be a non-empty string")
    comment = entry.get("comment") if isinstance(entry.get("comment"), str) else None
    request.app[STORE].feedback({"request_id": entry["request_id"], "rating": rating, "score": RATINGS.get(rating),
                                 "preferred": preferred, "comment": comment, "received_at": time.time()})  # fmt: skip
    request.app[METRICS].feedback(rating)
    return web.json_response({"accepted": True, "request_id": entry["request_id"]}, status=202)


async def metrics(request: web.Request) -> web.Response:
    request.app[METRICS].log_dropped.set(request.app[STORE].dropped)
    data, content_type = request.app[METRICS].render()
    return web.Response(body=data, headers={"Content-Type": content_type})


async def health(request: web.Request) -> web.Response:
    table = request.app[TABLE]
    table.refresh()
    return web.json_response({"routes": [{"name": r.name, "version": r.version, "weight": r.weight} for r in table.routes]})


def build_app(table: RouteTable, store: LogStore, *, timeout_s: float = 600, augment: AugmentTable | None = None) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[TABLE], app[STORE], app[METRICS] = table, store, GatewayMetrics()
    if augment is not None:
        app[AUGMENT] = augment

    async def session_ctx(app: web.Application):
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            app[SESSION] = session
            yield
        store.close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/feedback", feedback)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app
