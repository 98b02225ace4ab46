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
    principal: str | None = None
    """The pseudonymous id of the API key's principal."""
    source: str = "user"
    """Who asked: `user`, or the platform's own traffic named by the `x-domainllm-source`
    header (rollout probes, flywheel sampling), which the flywheel never trains on."""
    extra: dict[str, Any] = field(default_factory=dict)
    request_bytes: int = 0
    """The request body's size (what the log queue accounts for besides the response)."""


def reassemble(events: bytes, endpoint: str) -> dict[str, Any]:
    """A streamed response's events as the non-streamed response would have been (text and
    tool calls per choice, finish reasons, usage)."""
    texts: dict[int, list[str]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
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
        if not isinstance(chunk, dict):
            continue
        head = head or {k: chunk.get(k) for k in ("id", "model", "created")}
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            i = choice.get("index", 0)
            delta = choice.get("delta") or {}
            piece = delta.get("content") if endpoint == "chat.completions" else choice.get("text")
            texts.setdefault(i, []).append(piece if isinstance(piece, str) else "")
            for call in delta.get("tool_calls") or [] if endpoint == "chat.completions" else []:
                empty = {"type": "function", "function": {"name": "", "arguments": ""}}
                into = calls.setdefault(i, {}).setdefault(call.get("index", 0), empty)
                fn = call.get("function") or {}
                into["function"]["name"] += fn.get("name") or ""
                into["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish[i] = choice["finish_reason"]
    choices = []
    for i in sorted(texts):
        text = "".join(texts[i])
        if endpoint == "chat.completions":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if i in calls:
                message["tool_calls"] = [calls[i][k] for k in sorted(calls[i])]
            body: dict[str, Any] = {"message": message}
        else:
            body = {"text": text}
        choices.append({"index": i, **body, "finish_reason": finish.get(i)})
    return {**head, "choices": choices, "usage": usage}


def _answers(response: dict[str, Any], endpoint: str) -> list[str]:
    out = []
    for choice in sorted(response.get("choices") or [], key=lambda c: c.get("index", 0)):
        text = (choice.get("message") or {}).get("content") if endpoint == "chat.completions" else choice.get("text")
        out.append(text if isinstance(text, str) else "")
    return out


def _tool_calls(response: dict[str, Any]) -> list[Any]:
    """Per choice, the tool calls the model made (None where it made none)."""
    return [(choice.get("message") or {}).get("tool_calls") or None
            for choice in sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))]  # fmt: skip


STRUCTURAL = frozenset({"role", "type", "id", "tool_call_id", "index", "finish_reason"})
"""Keys whose string values are protocol, not text anyone wrote: left as they are."""


def scrub_all(value: Any, clean: Callable[[str], str]) -> Any:
    """`value` with every string in it scrubbed (message contents in any shape: strings,
    content-part lists, tool calls and their JSON arguments, tool results, names, `prompt`
    lists), except protocol fields such as `role`."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [scrub_all(v, clean) for v in value]
    if isinstance(value, dict):
        return {k: v if k in STRUCTURAL and isinstance(v, str) else scrub_all(v, clean) for k, v in value.items()}
    return value


PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "n", "stop", "seed", "repetition_penalty")


def record(ex: Exchange, scrub: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The log record: who answered (route, version), for whom (the principal's pseudonymous
    id), how (status, latency), what was asked (messages or prompt, tools, sampling
    parameters) and answered (one text per choice, tool calls), tokens. With `scrub`, every
    text in it that a caller or the model wrote is scrubbed."""
    clean = scrub or (lambda s: s)
    response: dict[str, Any] = {}
    if ex.body and 200 <= ex.status < 300:
        try:
            response = reassemble(ex.body, ex.endpoint) if ex.stream else json.loads(ex.body)
        except ValueError:
            response = {}
        if not isinstance(response, dict):
            response = {}
    req = ex.request
    if ex.endpoint == "chat.completions":
        prompt: dict[str, Any] = {"messages": scrub_all([m for m in req.get("messages") or [] if isinstance(m, dict)], clean)}
        if req.get("tools"):
            prompt["tools"] = scrub_all(req["tools"], clean)
    else:
        prompt = {"prompt": scrub_all(req.get("prompt"), clean)}
    usage = response.get("usage") or {}
    calls = _tool_calls(response) if ex.endpoint == "chat.completions" else []
    return {
        "request_id": ex.request_id, "received_at": ex.received_at, "endpoint": ex.endpoint, "route": ex.route,
        "version": ex.version, "model": req.get("model"), "source": ex.source, "principal": ex.principal, "status": ex.status,
        "error": ex.error, "latency_ms": round(ex.latency_ms, 3),
        "first_byte_ms": None if ex.first_byte_ms is None else round(ex.first_byte_ms, 3),
        "stream": ex.stream, **prompt, "params": scrub_all({k: req[k] for k in PARAMS if k in req}, clean),
        "answers": [clean(a) for a in _answers(response, ex.endpoint)],
        **({"tool_calls": scrub_all(calls, clean)} if any(calls) else {}),
        "finish_reasons": [c.get("finish_reason") for c in response.get("choices") or []],
        "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
        "intent": ex.extra.get("intent"), "intent_confidence": ex.extra.get("intent_confidence"),
        "retrieval": ex.extra.get("retrieval"),
    }  # fmt: skip
