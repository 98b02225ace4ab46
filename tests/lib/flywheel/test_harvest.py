"""Harvest over logs written by the gateway's real log store: the window's answered user
requests with the latest feedback on them; the platform's own traffic, errors and other
periods left out and counted; unreadable lines quarantined with the reason."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from domainllm.flywheel.harvest import harvest
from domainllm.flywheel.window import Window, WindowError
from domainllm.serve.gateway.exchange import Exchange
from domainllm.serve.gateway.store import LogStore

T0 = dt.datetime(2026, 11, 25, 10, tzinfo=dt.UTC).timestamp()


def _chat(rid: str, at: float, question: str, answer: str, *, status: int = 200, source: str = "user", stream: bool = False) -> Exchange:
    if stream:
        body = b"".join(f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': part}}]})}\n\n".encode()
                        for part in (answer[:3], answer[3:])) + b"data: [DONE]\n\n"  # fmt: skip
    else:
        body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]}).encode()
    return Exchange(rid, at, "chat.completions", "stable", "2", {"messages": [{"role": "user", "content": question}], "stream": stream},
                    status=status, body=body, stream=stream, source=source)  # fmt: skip


@pytest.fixture
def logs(tmp_path: Path) -> str:
    root = str(tmp_path / "logs")
    store = LogStore(root, scrub_pii=False, batch_s=0.05)
    try:
        store.submit(_chat("a", T0, "What does List::Util do?", "It has list helpers."))
        store.submit(_chat("b", T0 + 3600, "How do I sort numbers in Perl?", "sort { $a <=> $b } @x", stream=True))
        store.submit(_chat("c", T0 + 60, "Probe question", "probe answer", source="rollout-probe"))
        store.submit(_chat("d", T0 + 120, "Broken?", "", status=502))
        store.submit(_chat("e", T0 - 86400, "Yesterday's question", "old answer"))
        store.feedback({"request_id": "a", "rating": "down", "score": 0, "preferred": None, "received_at": T0 + 10})
        store.feedback({"request_id": "a", "rating": "up", "score": 1, "preferred": None, "received_at": T0 + 20})  # changed their mind
        store.feedback({"request_id": "b", "rating": None, "preferred": "Use sort { $a <=> $b } @numbers.", "received_at": T0 + 86400 * 2})
        assert store.flush()
    finally:
        store.close()
    part = next(Path(root).glob("requests/date=2026-11-25/hour=10/part-*.jsonl"))
    with part.open("a") as fh:
        fh.write("{not json\n")
    return root


def test_the_window_s_user_requests_with_their_latest_feedback(logs: str) -> None:
    now = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    result = harvest(logs, Window.parse("2026-11-25", "2026-11-26"), now=now)
    by_id = {r["request_id"]: r for r in result.rows}
    assert set(by_id) == {"a", "b"}
    assert by_id["a"]["rating"] == "up" and by_id["a"]["answer"] == "It has list helpers." and by_id["a"]["version"] == "2"
    assert by_id["b"]["answer"] == "sort { $a <=> $b } @x"  # reassembled from the stream
    assert by_id["b"]["preferred"] == "Use sort { $a <=> $b } @numbers."  # feedback two days later still counts
    assert by_id["a"]["prompt"] == [{"role": "user", "content": "What does List::Util do?"}]
    c = result.counts
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
