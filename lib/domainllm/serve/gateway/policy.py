"""What a request may ask for: an allowlist of OpenAI fields per endpoint, each checked and
capped (`serving.gateway`). Anything else is refused with a 400 naming the field, so a
client cannot reach vLLM's extensions (a `chat_template` of its own, `best_of`, guided
decoding, prompt logprobs, token-id prompts) through the gateway. A request that names no
`max_tokens` gets the cap, so every answer has a bound."""

from __future__ import annotations

from typing import Any

from domainllm.spec.serving import GatewayPolicy

COMMON = {"model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "n", "stop", "seed", "stream", "stream_options",
          "presence_penalty", "frequency_penalty", "repetition_penalty", "ignore_eos", "user", "retrieval"}  # fmt: skip
FIELDS = {
    "chat.completions": COMMON | {"messages", "max_completion_tokens", "logprobs", "top_logprobs", "tools", "tool_choice",
                                  "parallel_tool_calls", "response_format"},
    "completions": COMMON | {"prompt", "logprobs", "echo"},
}  # fmt: skip
ROLES = {"system", "developer", "user", "assistant", "tool"}
RANGES = {"temperature": (0, 2), "top_p": (0, 1), "min_p": (0, 1), "presence_penalty": (-2, 2), "frequency_penalty": (-2, 2),
          "repetition_penalty": (0.01, 10)}  # fmt: skip


class PolicyError(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _int(req: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = req.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PolicyError(f"`{name}` must be a whole number from {lo} to {hi}", name)
    return value


def _text_parts(content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list) or not all(
        isinstance(p, dict) and isinstance(p.get("type"), str) for p in content
    ):
        raise PolicyError(
            f'{where}: `content` must be a string or a list of parts like {{"type": "text", "text": ...}}',
            "messages",
        )
    for part in content:
        if part["type"] != "text" or not isinstance(part.get("text"), str):
            raise PolicyError(
                f"{where}: only text parts are served (got a {part['type']!r} part)", "messages"
            )


def _messages(req: dict[str, Any], policy: GatewayPolicy) -> None:
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise PolicyError('`messages` must be a non-empty list of {"role", "content"} objects', "messages")
    if len(msgs) > policy.max_messages:
        raise PolicyError(f"at most {policy.max_messages} messages per request (got {len(msgs)})", "messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise PolicyError(f"messages[{i}] needs a `role`, one of {sorted(ROLES)}", "messages")
        _text_parts(m.get("content"), f"messages[{i}]")


def _stop(req: dict[str, Any], policy: GatewayPolicy) -> None:
    stop = req.get("stop")
    if stop is None:
        return
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise PolicyError("`stop` must be a string or a list of strings", "stop")
    if len(stops) > policy.max_stop or any(len(s) > policy.max_stop_chars for s in stops):
        raise PolicyError(
            f"`stop`: at most {policy.max_stop} strings of at most {policy.max_stop_chars} characters", "stop"
        )


def check(endpoint: str, req: dict[str, Any], policy: GatewayPolicy) -> dict[str, Any]:
    """The request as it may be served (`max_tokens` filled in), or PolicyError."""
    unknown = sorted(set(req) - FIELDS[endpoint])
    if unknown:
        raise PolicyError(f"unsupported field(s) {', '.join(map(repr, unknown))} for /v1/{endpoint.replace('.', '/')}; "
                          f"supported: {', '.join(sorted(FIELDS[endpoint]))}", unknown[0])  # fmt: skip
    if not isinstance(req.get("model"), str):
        raise PolicyError("`model` must be a string (GET /v1/models lists them)", "model")
    if endpoint == "chat.completions":
        _messages(req, policy)
    elif not isinstance(req.get("prompt"), str) and not (isinstance(req.get("prompt"), list) and req["prompt"]
                                                          and all(isinstance(p, str) for p in req["prompt"])):  # fmt: skip
        raise PolicyError("`prompt` must be text: a string or a list of strings", "prompt")
    _int(req, "n", 1, policy.max_n)
    _int(req, "top_k", -1, 1000)
    _int(req, "seed", -(2**63), 2**63 - 1)
    given = [t for t in (_int(req, "max_tokens", 1, policy.max_tokens), _int(req, "max_completion_tokens", 1, policy.max_tokens))
             if t is not None]  # fmt: skip
    for name, (lo, hi) in RANGES.items():
        value = req.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi
        ):
            raise PolicyError(f"`{name}` must be a number from {lo} to {hi}", name)
    _stop(req, policy)
    if endpoint == "chat.completions":
        _int(req, "top_logprobs", 0, 5)
        if req.get("logprobs") is not None and not isinstance(req["logprobs"], bool):
            raise PolicyError("`logprobs` must be true or false", "logprobs")
    else:
        _int(req, "logprobs", 0, 5)
    for name in ("stream", "echo", "parallel_tool_calls", "ignore_eos"):
        if req.get(name) is not None and not isinstance(req[name], bool):
            raise PolicyError(f"`{name}` must be true or false", name)
    options = req.get("stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage"}):
        raise PolicyError("`stream_options` may only hold `include_usage`", "stream_options")
    if req.get("user") is not None and not isinstance(req["user"], str):
        raise PolicyError("`user` must be a string", "user")
    out = dict(req)
    if not given:
        out["max_tokens"] = policy.max_tokens
    return out


def reserve_tokens(req: dict[str, Any], body_bytes: int) -> int:
    """What a request may use: every choice's token cap plus an estimate of its prompt's
    tokens, reserved up front and replaced by the backend's count when it reports one."""
    per_choice = req.get("max_completion_tokens") or req.get("max_tokens") or 0
    return int(req.get("n") or 1) * int(per_choice) + body_bytes // 3
