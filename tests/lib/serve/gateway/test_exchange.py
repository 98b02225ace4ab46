"""Log records: a streamed answer is reassembled into the text per choice, finish reasons
and usage; prompts and answers go through the scrubber; parameters are kept."""

from __future__ import annotations

import json

from domainllm.serve.gateway.exchange import Exchange, reassemble, record


def _sse(*chunks: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def test_chat_stream_is_reassembled() -> None:
    events = _sse({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
                  {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}, {"index": 1, "delta": {"content": "Bye"}}]},
                  {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
                  {"id": "c1", "model": "m", "choices": [{"index": 1, "delta": {}, "finish_reason": "length"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 4}})  # fmt: skip
    out = reassemble(events, "chat.completions")
    assert [c["message"]["content"] for c in out["choices"]] == ["Hello", "Bye"]
    assert [c["finish_reason"] for c in out["choices"]] == ["stop", "length"] and out["usage"]["completion_tokens"] == 4
    text = reassemble(_sse({"choices": [{"index": 0, "text": "sub "}]}, {"choices": [{"index": 0, "text": "x {", "finish_reason": "stop"}]}),
                      "completions")  # fmt: skip
    assert text["choices"] == [{"index": 0, "text": "sub x {", "finish_reason": "stop"}]


def test_record_scrubs_and_keeps_what_the_flywheel_needs() -> None:
    req = {"model": "m", "messages": [{"role": "user", "content": "mail bob@example.com"}], "temperature": 0.7, "stream": True, "user": "u1"}
    events = _sse({"choices": [{"index": 0, "delta": {"content": "write to bob@example.com"}, "finish_reason": "stop"}]})
    ex = Exchange("r1", 1700000000.0, "chat.completions", "canary", "7", req, status=200, latency_ms=12.3456, first_byte_ms=3.2,
                  stream=True, body=events)  # fmt: skip
    rec = record(ex, scrub=lambda s: s.replace("bob@example.com", "<EMAIL>"))
    assert rec["messages"] == [{"role": "user", "content": "mail <EMAIL>"}] and rec["answers"] == ["write to <EMAIL>"]
    assert rec["params"] == {"temperature": 0.7} and rec["route"] == "canary" and rec["version"] == "7" and rec["latency_ms"] == 12.346
    failed = record(Exchange("r2", 0.0, "completions", "stable", "6", {"prompt": "x"}, status=502, error="backend down"))
    assert failed["answers"] == [] and failed["status"] == 502 and failed["prompt"] == "x"
