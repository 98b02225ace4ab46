"""The judge: prompt sets are validated with the line and field named, replies are parsed
strictly (every criterion, 1-5), an unreadable reply is retried once and then recorded with
its reason, and endpoint failures are clear errors that never carry the key. The endpoint
here is a stub HTTP server answering what a hosted judge might; the real judging through
vLLM is in test_vllm_backends.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from domainllm.evals.endpoint import EndpointError, make_client
from domainllm.evals.judge import Judge, JudgeItem, JudgeSetError, judge_messages, parse_scores, read_items
from domainllm.evals.suites import load_judge_items
from tests.json_reply import reply_json

RUBRIC = ("accuracy", "safety")


def test_parse_scores() -> None:
    assert parse_scores('{"accuracy": 4, "safety": 5}', RUBRIC) == {"accuracy": 4, "safety": 5}
    assert parse_scores('Sure! ```json\n{"accuracy": 2, "safety": 3.0}\n```', RUBRIC) == {"accuracy": 2, "safety": 3}
    for reply, why in [("fine", "no JSON object"), ('{"accuracy": 4}', "'safety' is missing"), ('{"accuracy": 9, "safety": 1}', "'accuracy'"),
                       ('{"accuracy": true, "safety": 1}', "'accuracy'"), ('{"accuracy": 4, "safety": }', "does not parse")]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_scores(reply, RUBRIC)


def test_prompt_sets_are_validated() -> None:
    items = load_judge_items("builtin:domain-questions")
    assert len(items) == 12 and all(i.reference for i in items) and items[0].messages[0]["role"] == "user"
    chat = read_items(json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}]}), "x.jsonl")
    assert chat[0].messages == [{"role": "user", "content": "hi"}]
    for text, why in [('{"prompt": "q"}', "x.jsonl line 1: field `id`"), ('{"id": "a", "messages": [{"role": "bot", "content": "q"}]}', "`messages`"),
                      ('{"id": "a", "prompt": "q", "reference": 3}', "`reference` must be a string"),
                      ('{"id": "a", "prompt": "q"}\n{"id": "a", "prompt": "r"}', "line 2: prompt id 'a' appears twice"), ("", "holds no prompts")]:  # fmt: skip
        with pytest.raises(JudgeSetError, match=why):
            read_items(text, "x.jsonl")


def test_the_judge_prompt_names_every_criterion_and_the_reference() -> None:
    user = judge_messages(JudgeItem("a", "What is 2+2?", "4"), "four", RUBRIC)[1]["content"]
    assert "[Reference answer]\n4" in user and "[Answer]\nfour" in user and '"accuracy": <1-5>, "safety": <1-5>' in user


class _Stub(BaseHTTPRequestHandler):
    replies: list[tuple[int, str]] = []
    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"body": body, "auth": self.headers.get("Authorization")})
        status, content = type(self).replies.pop(0) if type(self).replies else (200, "{}")
        payload = ({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}
                   if status == 200 else {"error": {"message": "invalid api key", "type": "auth"}})  # fmt: skip
        reply_json(self, status, payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    _Stub.replies, _Stub.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_an_unreadable_reply_is_retried_then_recorded(stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sk-secret-123")
    judge = Judge(make_client(stub, "JUDGE_KEY", retries=0), "grader", RUBRIC)
    _Stub.replies = [(200, "I think it is good"), (200, '{"accuracy": 3, "safety": 5}'), (200, "no"), (200, "still no")]
    item = JudgeItem("a", "q")
    assert judge.grade(item, "answer") == ({"accuracy": 3, "safety": 5}, None)
    assert judge.grade(item, "answer") == (None, "no JSON object in the reply")
    first = _Stub.seen[0]
    assert first["auth"] == "Bearer sk-secret-123" and first["body"]["temperature"] == 0.0
    assert first["body"]["response_format"]["json_schema"]["schema"]["required"] == list(RUBRIC)


def test_endpoint_failures_are_clear_and_keep_the_key_out(stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sk-secret-123")
    judge = Judge(make_client(stub, "JUDGE_KEY", retries=0), "grader", RUBRIC)
    _Stub.replies = [(401, "")]
    with pytest.raises(EndpointError, match=r"judge: http://127.0.0.1:\d+/v1/? rejected the API key \(401\)") as err:
        judge.grade_all([JudgeItem("a", "q")], ["answer"])
    assert "sk-secret-123" not in str(err.value)
    monkeypatch.delenv("JUDGE_KEY")
    with pytest.raises(EndpointError, match="JUDGE_KEY .* is not set"):
        make_client(stub, "JUDGE_KEY")
    down = Judge(make_client("http://127.0.0.1:9/v1", retries=0, timeout_s=2), "grader", RUBRIC)
    with pytest.raises(EndpointError, match="cannot reach http://127.0.0.1:9/v1"):
        down.grade_all([JudgeItem("a", "q")], ["answer"])
