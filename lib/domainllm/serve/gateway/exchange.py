"""One request and its response as the gateway saw them, and the log record made from it.
A streamed response is kept as the raw server-sent events and reassembled here, off the
request path: text per choice, finish reasons, token usage when the server sent it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SOURCE_HEADER = "x-domainllm-source"
"""Marks the platform's own requests (`rollout-probe`, `flywheel-sample`) in the request log."""


@dataclass
class Exchange:
    request_id: str
    received_at: float
    """Epoch seconds."""
    endpoint: str
    """`chat.completions` or `completions`."""
    route: str
    version: str
    request: dict[str, Any]
    status: int = 0
    latency_ms: float = 0.0
    first_byte_ms: float | None = None
    stream: bool = False
    body: bytes = b""
    """The response as sent: JSON, or the server-sent events of a stream."""
    error: str | None = None
    source: str = "user"
    """Who asked: `user`, or the platform's own traffic named by the `x-domainllm-source`
    header (rollout probes, flywheel sampling), which the flywheel never trains on."""
    extra: dict[str, Any] = field(default_factory=dict)


def reassemble(events: bytes, endpoint: str) -> dict[str, Any]:
    """A streamed response's events as the non-streamed response would have been."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    head: dict[str, Any] = {}
    usage = None
    for line in events.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            chunk = json.loads(payload)
        except ValueError:
            continue
        head = head or {k: chunk.get(k) for k in ("id", "model", "created")}
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            i = choice.get("index", 0)
            piece = (choice.get("delta") or {}).get("content") if endpoint == "chat.completions" else choice.get("text")
            texts.setdefault(i, []).append(piece or "")
            if choice.get("finish_reason"):
                finish[i] = choice["finish_reason"]
    choices = []
    for i in sorted(texts):
        text = "".join(texts[i])
        body = {"message": {"role": "assistant", "content": text}} if endpoint == "chat.completions" else {"text": text}
        choices.append({"index": i, **body, "finish_reason": finish.get(i)})
    return {**head, "choices": choices, "usage": usage}


def _answers(response: dict[str, Any], endpoint: str) -> list[str]:
    out = []
    for choice in sorted(response.get("choices") or [], key=lambda c: c.get("index", 0)):
        out.append((choice.get("message") or {}).get("content") or "" if endpoint == "chat.completions" else choice.get("text") or "")
    return out


PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "n", "stop", "seed", "repetition_penalty")


def record(ex: Exchange, scrub: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The log record: who answered (route, version), how (status, latency), what was asked
    (messages or prompt, sampling parameters) and answered (one text per choice), tokens."""
    clean = scrub or (lambda s: s)
    response: dict[str, Any] = {}
    if ex.body and 200 <= ex.status < 300:
        try:
            response = reassemble(ex.body, ex.endpoint) if ex.stream else json.loads(ex.body)
        except ValueError:
            response = {}
    req = ex.request
    if ex.endpoint == "chat.completions":
        prompt = {"messages": [{"role": m.get("role"), "content": clean(m["content"]) if isinstance(m.get("content"), str) else m.get("content")}
                               for m in req.get("messages") or [] if isinstance(m, dict)]}  # fmt: skip
    else:
        p = req.get("prompt")
        prompt = {"prompt": clean(p) if isinstance(p, str) else p}
    usage = response.get("usage") or {}
    return {
        "request_id": ex.request_id, "received_at": ex.received_at, "endpoint": ex.endpoint, "route": ex.route,
        "version": ex.version, "model": req.get("model"), "source": ex.source, "status": ex.status, "error": ex.error,
        "latency_ms": round(ex.latency_ms, 3), "first_byte_ms": None if ex.first_byte_ms is None else round(ex.first_byte_ms, 3),
        "stream": ex.stream, **prompt, "params": {k: req[k] for k in PARAMS if k in req},
        "answers": [clean(a) for a in _answers(response, ex.endpoint)],
        "finish_reasons": [c.get("finish_reason") for c in response.get("choices") or []],
        "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
        "intent": ex.extra.get("intent"), "intent_confidence": ex.extra.get("intent_confidence"),
        "retrieval": ex.extra.get("retrieval"),
    }  # fmt: skip
