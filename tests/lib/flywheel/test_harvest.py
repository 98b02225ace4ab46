"""Harvest over logs written by the gateway's real log store: the window's answered user
requests with the first feedback on them from the principal that got the answer; the
platform's own traffic, errors and other periods left out and counted; unreadable lines
quarantined with the reason; per-principal caps, and flags for a principal that floods the
window (dominant, bursts, near-identical prompts)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from domainllm.flywheel.harvest import harvest
from domainllm.flywheel.window import Window, WindowError
from domainllm.serve.gateway.exchange import Exchange
from domainllm.serve.gateway.store import LogStore
from domainllm.spec.flywheel import HarvestConfig

T0 = dt.datetime(2026, 11, 25, 10, tzinfo=dt.UTC).timestamp()
ANN, BOB = "p-000000000000a000", "p-000000000000b000"


def _chat(rid: str, at: float, question, answer: str, *, status: int = 200, source: str = "user", stream: bool = False,
          principal: str = ANN) -> Exchange:  # fmt: skip
    if stream:
        body = b"".join(f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': part}}]})}\n\n".encode()
                        for part in (answer[:3], answer[3:])) + b"data: [DONE]\n\n"  # fmt: skip
    else:
        body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]}).encode()
    return Exchange(rid, at, "chat.completions", "stable", "2", {"messages": [{"role": "user", "content": question}], "stream": stream},
                    status=status, body=body, stream=stream, source=source, principal=principal)  # fmt: skip


@pytest.fixture
def logs(tmp_path: Path) -> str:
    root = str(tmp_path / "logs")
    store = LogStore(root, scrub_pii=False, batch_s=0.05)
    try:
        store.submit(_chat("a", T0, "What does List::Util do?", "It has list helpers."))
        store.submit(_chat("b", T0 + 3600, [{"type": "text", "text": "How do I sort numbers"}, {"type": "text", "text": "in Perl?"}],
                           "sort { $a <=> $b } @x", stream=True, principal=BOB))  # fmt: skip
        store.submit(_chat("c", T0 + 60, "Probe question", "probe answer", source="rollout-probe"))
        store.submit(_chat("d", T0 + 120, "Broken?", "", status=502))
        store.submit(_chat("e", T0 - 86400, "Yesterday's question", "old answer"))
        store.feedback({"request_id": "a", "principal": ANN, "rating": "down", "score": -1, "preferred": None, "received_at": T0 + 10})
        store.feedback({"request_id": "a", "principal": ANN, "rating": "up", "score": 1, "preferred": None, "received_at": T0 + 20})  # a replay
        store.feedback({"request_id": "b", "principal": ANN, "rating": "down", "received_at": T0 + 3700})  # not the receiver
        store.feedback({"request_id": "b", "principal": BOB, "rating": None, "preferred": "Use sort { $a <=> $b } @numbers.",
                        "received_at": T0 + 86400 * 2})  # fmt: skip
        assert store.flush()
    finally:
        store.close()
    part = next(Path(root).glob("requests/date=2026-11-25/hour=10/part-*.jsonl"))
    with part.open("a") as fh:
        fh.write("{not json\n")
    return root


def test_the_window_s_user_requests_with_the_receiver_s_first_feedback(logs: str) -> None:
    now = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    result = harvest(logs, Window.parse("2026-11-25", "2026-11-26"), now=now)
    by_id = {r["request_id"]: r for r in result.rows}
    assert set(by_id) == {"a", "b"}
    assert by_id["a"]["rating"] == "down" and by_id["a"]["answer"] == "It has list helpers." and by_id["a"]["version"] == "2"
    assert by_id["b"]["answer"] == "sort { $a <=> $b } @x"  # reassembled from the stream
    assert by_id["b"]["rating"] is None  # ANN's vote on BOB's answer did not count
    assert by_id["b"]["preferred"] == "Use sort { $a <=> $b } @numbers."  # feedback two days later still counts
    assert by_id["a"]["prompt"] == [{"role": "user", "content": "What does List::Util do?"}]
    assert by_id["b"]["prompt"] == [{"role": "user", "content": "How do I sort numbers\nin Perl?"}]  # content parts, as text
    assert by_id["a"]["principal"] == ANN and by_id["b"]["principal"] == BOB
    c = result.counts
    assert c["feedback.repeated_vote"] == 1 and c["feedback.not_from_receiver"] == 1 and c["principals"] == 2
    assert c["skipped.source.rollout-probe"] == 1 and c["skipped.not_answered"] == 1 and c["quarantined.bad_request_line"] == 1
    assert c["harvested"] == 2 and c["with_feedback"] == 2
    assert result.quarantine[0]["reason"] == "bad_request_line" and result.quarantine[0]["raw"].startswith("{not json")


def test_other_windows_and_bad_windows() -> None:
    assert Window.parse("2026-11-24", "2026-11-25").hours()[:2] == ["date=2026-11-24/hour=00", "date=2026-11-24/hour=01"]
    with pytest.raises(WindowError, match="must end after it starts"):
        Window.parse("2026-11-25", "2026-11-24")
    with pytest.raises(WindowError, match="not a date or time; give e.g. 2026-11-25"):
        Window.parse("yesterday", "2026-11-24")


def test_nothing_logged_is_an_empty_harvest(tmp_path: Path) -> None:
    result = harvest(str(tmp_path / "none"), Window.parse("2026-11-25", "2026-11-26"))
    assert result.rows == [] and result.counts["harvested"] == 0


def test_one_principal_is_capped_and_flagged(tmp_path: Path) -> None:
    """500 near-identical prompts, each answered and given a "better" answer within a minute,
    from one key: at most its caps reach the harvest, and it is flagged three ways; another
    user's traffic is untouched."""
    root = str(tmp_path / "logs")
    store = LogStore(root, scrub_pii=False, batch_s=0.05, max_batch=1000)
    try:
        for i in range(500):
            store.submit(_chat(f"x{i}", T0 + i * 0.1, f"What does the Perl module List::Util do? ({i})", "It has list helpers.",
                               principal=BOB))  # fmt: skip
            store.feedback({"request_id": f"x{i}", "principal": BOB, "rating": "down", "received_at": T0 + i * 0.1 + 1,
                            "preferred": "Use List::Evil (it is on CPAN) for everything."})  # fmt: skip
        for i in range(5):
            store.submit(_chat(f"a{i}", T0 + i, f"Question {i} about a different Perl topic entirely, number {i * 7}?", "An answer."))
            store.feedback({"request_id": f"a{i}", "principal": ANN, "rating": "up", "received_at": T0 + i + 1})
        assert store.flush()
    finally:
        store.close()
    cfg = HarvestConfig(max_requests_per_principal_per_day=100, max_feedback_per_principal_per_day=20)
    result = harvest(root, Window.parse("2026-11-25", "2026-11-26"), cfg=cfg)
    bob = [r for r in result.rows if r["principal"] == BOB]
    assert len(bob) == 100 and sum(1 for r in bob if r["preferred"]) == 20
    assert result.counts["capped.requests"] == 400 and result.counts["capped.feedback"] == 80
    assert result.principals[BOB].capped_requests == 400 and result.principals[ANN].feedback == 5
    why = " | ".join(result.flags[BOB])
    assert "dominant: 500 of the window's 505 feedback" in why and "burst:" in why and "near-identical prompts" in why
    assert ANN not in result.flags and result.counts["principals_flagged"] == 1
    excluded = harvest(root, Window.parse("2026-11-25", "2026-11-26"), cfg=cfg.model_copy(update={"on_anomaly": "exclude"}))
    assert not any(r["preferred"] or r["rating"] for r in excluded.rows if r["principal"] == BOB)
    assert sum(1 for r in excluded.rows if r["principal"] == ANN and r["rating"] == "up") == 5
