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

Every `/v1` call needs an API key (`Authorization: Bearer dlm-...`, auth.py); the request
is checked against the field allowlist and caps (policy.py) and the key's limits (limits.py).
Answers get an id the gateway signs for the key that asked (ids.py): feedback on it is taken
from that key alone, once. Errors have OpenAI's shape (`{"error": {"message", "type",
"param", "code"}}`).

User endpoints: `POST /v1/chat/completions`, `POST /v1/completions` (streaming or not),
`GET /v1/models`, `POST /v1/feedback`, `GET /health` (liveness only). The admin app, on its
own port: `GET /metrics` (Prometheus) and `GET /health` (routes, keys, the log writer)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any

import aiohttp
from aiohttp import web

from domainllm.serve.gateway.augment import Augmented, AugmentError, AugmentTable, parse_override
from domainllm.serve.gateway.auth import KeyTable, Principal, bearer
from domainllm.serve.gateway.exchange import SOURCE_HEADER, Exchange
from domainllm.serve.gateway.ids import RequestIds, Votes
from domainllm.serve.gateway.limits import Limiter, LimitExceeded
from domainllm.serve.gateway.metrics import GatewayMetrics
from domainllm.serve.gateway.policy import PolicyError, check, reserve_tokens
from domainllm.serve.gateway.routes import RoutesError, RouteTable
from domainllm.serve.gateway.store import LogStore
from domainllm.spec.serving import GatewayPolicy

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
SOURCE = re.compile(r"[a-z0-9-]{1,32}")
RATINGS = {"up": 1, "down": -1}
TABLE, STORE, METRICS, SESSION = (web.AppKey(n, t) for n, t in
                                  (("table", RouteTable), ("store", LogStore), ("metrics", GatewayMetrics), ("session", aiohttp.ClientSession)))  # fmt: skip
AUGMENT = web.AppKey("augment", AugmentTable)
KEYS, IDS, VOTES, LIMITER, POLICY = (web.AppKey(n, t) for n, t in
                                     (("keys", KeyTable), ("ids", RequestIds), ("votes", Votes), ("limiter", Limiter), ("policy", GatewayPolicy)))  # fmt: skip
BACKEND_KEY = web.AppKey("backend_key", str)
USER_APP = web.AppKey("user_app", web.Application)
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
               409: "conflict_error", 413: "invalid_request_error", 429: "rate_limit_error", 502: "gateway_error", 503: "gateway_error"}  # fmt: skip


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


def _error(status: int, message: str, request_id: str | None = None, *, code: str | None = None, param: str | None = None,
           retry_after_s: float | None = None) -> web.Response:  # fmt: skip
    headers = {"x-request-id": request_id} if request_id else {}
    if retry_after_s is not None:
        headers["retry-after"] = str(max(1, int(retry_after_s + 0.999)))
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    error = {"message": message, "type": ERROR_TYPES.get(status, "gateway_error"), "param": param, "code": code or str(status)}
    return web.json_response({"error": error}, status=status, headers=headers)


def _refused(request: web.Request, status: int, message: str, code: str, **kw: Any) -> web.Response:
    request.app[METRICS].refused.labels(code).inc()
    return _error(status, message, code=code, **kw)


def _principal(request: web.Request) -> Principal | None:
    keys = request.app[KEYS]
    keys.refresh(time.monotonic())
    return keys.lookup(bearer(request.headers.get("Authorization"), request.headers.get("api-key")))


UNAUTHORIZED = "a valid API key is needed: `Authorization: Bearer <key>` (ask the platform team for one)"


async def _caller_and_body(request: web.Request, what: str) -> tuple[Principal, int, Any] | web.Response:
    """(who calls, the body's size, the body as JSON), or the refusal: 401 without a valid
    key, 413 above `max_body_bytes`, 400 for a body that is not JSON."""
    principal = _principal(request)
    if principal is None:
        return _refused(request, 401, UNAUTHORIZED, "invalid_api_key")
    limit = request.app[POLICY].max_body_bytes
    too_big = f"the request body is larger than {limit} bytes: send less (fewer or shorter messages)"
    if (request.content_length or 0) > limit:
        return _refused(request, 413, too_big, "request_too_large")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _refused(request, 413, too_big, "request_too_large")
    try:
        return principal, len(body), json.loads(body)
    except ValueError:
        return _refused(request, 400, f"the {what} body must be a JSON object", "invalid_json")


def _used_tokens(body: bytes, stream: bool) -> int | None:
    """Prompt + completion tokens from the backend's `usage` (a stream has it in its last
    events when the client asked with `stream_options.include_usage`)."""
    if stream:
        at = body.rfind(b'"usage"')
        if at < 0:
            return None
        start = body.rfind(b"data:", 0, at)
        end = body.find(b"\n", at)
        body = body[start + 5 : end if end >= 0 else len(body)]
    try:
        usage = json.loads(body).get("usage") or {}
        return int(usage["prompt_tokens"]) + int(usage.get("completion_tokens") or 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


async def _proxy(request: web.Request, endpoint: str, path: str) -> web.StreamResponse:
    app = request.app
    t0 = time.perf_counter()
    received = time.time()
    called = await _caller_and_body(request, "request")
    if isinstance(called, web.Response):
        return called
    principal, size, req = called
    if not isinstance(req, dict):
        return _refused(request, 400, "the request body must be a JSON object", "invalid_json")
    try:
        req = check(endpoint, req, app[POLICY])
    except PolicyError as exc:
        return _refused(request, 400, str(exc), "invalid_request", param=exc.param)
    reserved = reserve_tokens(req, size)
    try:
        app[LIMITER].start(principal, reserved)
    except LimitExceeded as exc:
        return _refused(request, 429, str(exc), exc.code, retry_after_s=exc.retry_after_s)
    request_id = app[IDS].issue(principal.principal)
    try:
        return await _forward(request, endpoint, path, principal, req, size, request_id, t0, received)
    finally:
        # what it used: the backend's count, or 0 when it was refused or failed before generating,
        # or None (the reservation stands) when that is not known
        app[LIMITER].finish(principal, reserved, app[LIMITER].used.pop(request_id, 0))


async def _forward(request: web.Request, endpoint: str, path: str, principal: Principal, req: dict[str, Any], size: int,
                   request_id: str, t0: float, received: float) -> web.StreamResponse:  # fmt: skip
    app = request.app
    try:
        augmented = await asyncio.get_running_loop().run_in_executor(None, _augment, app, endpoint, req)
    except AugmentError as exc:
        return _error(400, str(exc), request_id, code="invalid_request", param="retrieval")
    except Exception as exc:  # retrieval is an extra: a broken index must not take answers down
        log.exception("gateway: retrieval failed; answering without it")
        augmented = Augmented({k: v for k, v in req.items() if k != "retrieval"})
        augmented.error = f"{type(exc).__name__}: retrieval failed"
    body = json.dumps(augmented.request).encode()
    try:
        route = app[TABLE].pick()
    except RoutesError as exc:
        return _error(503, str(exc), request_id, code="no_route")
    stream = bool(req.get("stream"))
    source = request.headers.get(SOURCE_HEADER, "user") if principal.platform else "user"  # only platform keys mark their traffic
    exchange = Exchange(request_id, received, endpoint, route.name, route.version, req, stream=stream, principal=principal.principal,
                        source=source if SOURCE.fullmatch(source) else "user", request_bytes=size)  # fmt: skip
    exchange.extra.update(augmented.log_fields())
    headers = {"Content-Type": "application/json", "x-request-id": request_id}
    if app[BACKEND_KEY]:  # the backends' own key; a client's key never leaves the gateway
        headers["Authorization"] = f"Bearer {app[BACKEND_KEY]}"
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
            out = _error(502, f"the {route.name} backend did not answer ({type(exc).__name__})", request_id, code="backend_failed")
            out.headers["x-model-version"] = route.version
    except asyncio.CancelledError:  # the client went away and the server cancelled the handler
        if not answered:  # after the last event it had its whole answer: logged as answered, answer included
            exchange.status, exchange.error = 499, "the client closed the connection"
        raise
    finally:
        if stream and chunks:
            exchange.body = b"".join(chunks)
        exchange.latency_ms = (time.perf_counter() - t0) * 1000
        if 200 <= exchange.status < 300:
            app[LIMITER].used[request_id] = _used_tokens(exchange.body, stream)
        else:  # refused or failed before anything was generated; a client gone mid-stream had tokens made
            app[LIMITER].used[request_id] = None if exchange.status == 499 else 0
        app[METRICS].observe(exchange)
        app[STORE].submit(exchange)
    return out


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "chat.completions", "/chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await _proxy(request, "completions", "/completions")


async def models(request: web.Request) -> web.Response:
    if _principal(request) is None:
        return _refused(request, 401, UNAUTHORIZED, "invalid_api_key")
    try:
        route = request.app[TABLE].pick()
    except RoutesError as exc:
        return _error(503, str(exc), code="no_route")
    headers = {"Authorization": f"Bearer {request.app[BACKEND_KEY]}"} if request.app[BACKEND_KEY] else None
    try:
        async with request.app[SESSION].get(route.base_url + "/models", headers=headers) as resp:
            return web.Response(body=await resp.read(), status=resp.status, content_type="application/json")
    except (TimeoutError, aiohttp.ClientError) as exc:
        return _error(502, f"the {route.name} backend did not answer ({type(exc).__name__})", code="backend_failed")


def _feedback_fields(entry: Any, policy: GatewayPolicy) -> str | None:
    """What is wrong with a feedback body, or None."""
    if not isinstance(entry, dict) or not isinstance(entry.get("request_id"), str) or not REQUEST_ID.fullmatch(entry["request_id"]):
        return "feedback needs `request_id`: the x-request-id header of the answer it is about"
    unknown = sorted(set(entry) - {"request_id", "rating", "preferred", "comment"})
    if unknown:
        return f"unsupported feedback field(s) {', '.join(map(repr, unknown))}; supported: request_id, rating, preferred, comment"
    rating, preferred, comment = entry.get("rating"), entry.get("preferred"), entry.get("comment")
    if rating is None and preferred is None:
        return "feedback needs `rating` (up or down) or `preferred` (a better answer), or both"
    if rating is not None and rating not in RATINGS:
        return '`rating` must be "up" or "down"'
    if preferred is not None and (not isinstance(preferred, str) or not preferred.strip()):
        return "`preferred` must be a non-empty string"
    if comment is not None and not isinstance(comment, str):
        return "`comment` must be a string"
    if max(len(preferred or ""), len(comment or "")) > policy.max_feedback_chars:
        return f"`preferred` and `comment` may hold at most {policy.max_feedback_chars} characters"
    return None


async def feedback(request: web.Request) -> web.Response:
    """`{"request_id", "rating": "up"|"down", "preferred": "a better answer"?, "comment"?}`:
    taken once per answer, from the key the answer was given to."""
    app = request.app
    called = await _caller_and_body(request, "feedback")
    if isinstance(called, web.Response):
        return called
    principal, _, entry = called
    problem = _feedback_fields(entry, app[POLICY])
    if problem is not None:
        return _refused(request, 400, problem, "invalid_feedback")
    rid = entry["request_id"]
    if app[IDS].verify(rid, principal.principal) is not None:  # forged, another key's, or too old: the same answer for each
        return _refused(request, 404, f"no answer with this id for this key (answers can be rated for "
                                      f"{app[POLICY].feedback_ttl_s / 86400:g} days by the key that asked)", "unknown_request_id")  # fmt: skip
    if not app[VOTES].first(rid):
        return _refused(request, 409, "this answer was rated already: one rating per answer", "already_rated")
    try:
        app[LIMITER].feedback(principal)
    except LimitExceeded as exc:
        app[VOTES].forget(rid)
        return _refused(request, 429, str(exc), exc.code, retry_after_s=exc.retry_after_s)
    rating = entry.get("rating")
    stored = app[STORE].feedback({"request_id": rid, "principal": principal.principal, "rating": rating, "score": RATINGS.get(rating),
                                  "preferred": entry.get("preferred"), "comment": entry.get("comment"), "received_at": time.time()})  # fmt: skip
    if not stored:
        app[VOTES].forget(rid)
        return _refused(request, 503, "feedback cannot be recorded right now; retry in a minute", "log_unavailable", retry_after_s=60)
    app[METRICS].feedback(rating)
    return web.json_response({"accepted": True, "request_id": rid}, status=202)


async def liveness(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    app = request.app[USER_APP]
    store = app[STORE]
    app[METRICS].log_dropped.set(store.dropped)
    app[METRICS].log_lost.set(store.lost)
    app[METRICS].log_writer_restarts.set(store.restarts)
    app[METRICS].log_pending_bytes.set(store.pending_bytes)
    with contextlib.suppress(RoutesError):  # a broken table is not taken: the one in use stays (and so does its generation)
        app[TABLE].refresh()
    app[METRICS].routes_generation.set(app[TABLE].generation)
    data, content_type = app[METRICS].render()
    return web.Response(body=data, headers={"Content-Type": content_type})


async def health(request: web.Request) -> web.Response:
    app = request.app[USER_APP]
    table, store, keys = app[TABLE], app[STORE], app[KEYS]
    table.refresh()
    return web.json_response({
        "routes": [{"name": r.name, "version": r.version, "weight": r.weight} for r in table.routes],
        "keys": {"active": len(keys), "error": keys.error},
        "log_writer": {"alive": store.alive, "restarts": store.restarts, "dropped": store.dropped, "lost": store.lost,
                       "pending_bytes": store.pending_bytes},
    })  # fmt: skip


async def _watch_writer(store: LogStore) -> None:
    while True:
        await asyncio.sleep(1)
        store.check_writer()


def build_app(table: RouteTable, store: LogStore, keys: KeyTable, ids: RequestIds, *, policy: GatewayPolicy | None = None,
              augment: AugmentTable | None = None, backend_key: str = "") -> web.Application:  # fmt: skip
    """The user-facing app; `build_admin_app(app)` serves its metrics and health apart."""
    policy = policy or GatewayPolicy()
    app = web.Application(client_max_size=policy.max_body_bytes)
    app[TABLE], app[STORE], app[METRICS], app[KEYS], app[IDS] = table, store, GatewayMetrics(), keys, ids
    app[VOTES], app[LIMITER], app[POLICY], app[BACKEND_KEY] = Votes(policy.feedback_ttl_s), Limiter(), policy, backend_key
    if augment is not None:
        app[AUGMENT] = augment

    async def session_ctx(app: web.Application):
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        watcher = asyncio.create_task(_watch_writer(store))
        timeout = aiohttp.ClientTimeout(total=policy.request_timeout_s)
        # trust_env: backends are reached through HTTP(S)_PROXY when one is set, except NO_PROXY
        # hosts (a cluster that proxies egress lists .svc.cluster.local there), as every client does
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=True) as session:
            app[SESSION] = session
            yield
        watcher.cancel()
        store.close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/feedback", feedback)
    app.router.add_get("/health", liveness)
    return app


def build_admin_app(user_app: web.Application) -> web.Application:
    admin = web.Application()
    admin[USER_APP] = user_app
    admin.router.add_get("/metrics", metrics)
    admin.router.add_get("/health", health)
    return admin
