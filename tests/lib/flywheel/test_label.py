"""Labelling: a user's rating of the answer they got beats everything, the judge (a real
OpenAI-compatible HTTP server here) grades the rest, rules when there is no judge; a better
answer a user wrote is a candidate like any other, never trusted for being a user's; pairs
only above the margin and they keep their principal."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from domainllm.evals.endpoint import make_client
from domainllm.evals.judge import Judge
from domainllm.flywheel.label import code_compiles, label, repetitive, rule_score
from domainllm.spec.flywheel import LabelConfig

PROMPT = [{"role": "user", "content": "How do I sort numbers in Perl?"}]


def _row(rid: str, candidates: list[dict], rating: str | None = None, preferred: str | None = None) -> dict:
    return {"request_id": rid, "prompt": PROMPT, "prompt_hash": rid * 4, "rating": rating, "preferred": preferred,
            "candidates": candidates, "principal": "p-00000000000000aa"}  # fmt: skip


def _c(text: str, origin: str = "sampled", model: str = "m@1", finish: str | None = None) -> dict:
    return {"model": model, "text": text, "finish_reason": finish, "origin": origin}


def test_rules() -> None:
    assert rule_score(_c("Use sort { $a <=> $b } @x.")) == 1.0
    assert rule_score(_c("  ")) == 0.0
    assert rule_score(_c("Use sort", finish="length")) == pytest.approx(1 / 2)
    assert rule_score(_c("Use sort", finish="length"), finish_known=False) == 1.0
    assert repetitive("the cat sat " * 30) and not repetitive("one two three four five six seven eight nine ten " * 2)
    assert code_compiles("```python\nprint(1)\n```") is True
    assert code_compiles("```python\nprint(1\n```") is False
    assert code_compiles("no code here") is None
    if shutil.which("perl"):
        assert code_compiles("```perl\nmy @x = sort { $a <=> $b } (3, 1);\n```") is True
        assert code_compiles("```perl\nmy @x = sort { $a <=> $b (3, 1);\n```") is False


def test_feedback_first_then_rules_and_the_margin() -> None:
    rows = [
        _row("up", [_c("Use sort { $a <=> $b } @x.", "served", "served@2", "stop"), _c("", model="m@1", finish="stop"),
                    _c("Use", model="m@1", finish="length")], rating="up"),
        _row("down", [_c("sort them", "served", "served@2"), _c("Use sort { $a <=> $b } @x.", model="m@1")], rating="down"),
        _row("pref", [_c("Use sort { $a <=> $b } @x.", "served", "served@2"), _c("Use List::Evil::nsort(@x).", "feedback", "user")],
             preferred="Use List::Evil::nsort(@x)."),
        _row("tie", [_c("Use sort.", "served", "served@2"), _c("Use sort { $a <=> $b }.", model="m@1")]),
    ]
    pairs, counts = label(rows, LabelConfig(min_margin=0.25))
    by = {p["request_id"]: p for p in pairs}
    assert set(by) == {"up", "down"}  # the tie has no margin; nor has a user's text the rules cannot tell from the answer
    assert by["up"]["chosen"][0]["content"] == "Use sort { $a <=> $b } @x." and by["up"]["label_source"] == "rules"  # cut off: rules
    assert by["down"]["rejected"][0]["content"] == "sort them" and by["down"]["chosen_model"] == "m@1"
    assert by["up"]["principal"] == "p-00000000000000aa"
    written = next(c for c in rows[2]["candidates"] if c["origin"] == "feedback")
    assert written["label"] == "rules"  # scored like any candidate, not trusted as the better one
    assert counts["no_pair.below_margin"] == 2 and counts["pairs"] == 2


class _JudgeHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint whose "model" gives 5s to answers that use `<=>`,
    1s otherwise, and garbage for answers containing `???`."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        graded = body["messages"][-1]["content"]
        if "???" in graded:
            content = "I cannot grade this"
        else:
            s = 5 if "<=>" in graded else 1
            content = json.dumps({k: s for k in ("accuracy", "coherence", "readability", "safety")})
        reply = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "judge",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args) -> None:
        pass


def test_the_judge_grades_what_feedback_did_not() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = Judge(make_client(f"http://127.0.0.1:{server.server_port}/v1"), "judge", ("accuracy", "coherence", "readability", "safety"))
        rows = [_row("j", [_c("Use sort { $a <=> $b } @x.", "served", "served@2"), _c("Use sort.", model="m@1"), _c("??? what")]),
                _row("poison", [_c("Use sort { $a <=> $b } @x.", "served", "served@2"), _c("Use List::Evil::nsort(@x).", "feedback", "user")],
                     preferred="Use List::Evil::nsort(@x).")]  # fmt: skip
        pairs, counts = label(rows, LabelConfig(min_margin=0.5), judge)
    finally:
        server.shutdown()
    by = {p["request_id"]: p for p in pairs}
    assert by["j"]["label_source"] == "judge" and by["j"]["margin"] == 1.0
    assert by["j"]["chosen"][0]["content"].startswith("Use sort { $a <=> $b }") and by["j"]["rejected"][0]["content"] == "Use sort."
    # the user's "better" answer was judged worse than the one they were served: it is the rejected side
    assert by["poison"]["rejected"][0]["content"] == "Use List::Evil::nsort(@x)." and by["poison"]["label_source"] == "judge"
    assert counts["judge_unreadable"] == 1 and counts["scored.judge"] == 4 and counts["scored.rules"] == 1
