"""The log store: records land under date/hour partitions, PII scrubbed by the writer
process before anything is written, feedback beside them; flush waits for the writer."""

from __future__ import annotations

import json
from pathlib import Path

from domainllm.serve.gateway.exchange import Exchange
from domainllm.serve.gateway.store import LogStore


def test_records_are_partitioned_and_scrubbed(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path / "logs"), batch_s=0.05)
    try:
        body = json.dumps({"choices": [{"index": 0, "text": "call 212-555-0187 or mail ann@example.org"}]}).encode()
        store.submit(Exchange("r1", 1764165600.0, "completions", "stable", "3", {"prompt": "my email is ann@example.org"}, status=200,
                              body=body))  # fmt: skip
        store.feedback({"request_id": "r1", "rating": "up", "score": 1, "preferred": "write to ann@example.org", "received_at": 1764165601.0})
        assert store.flush()
    finally:
        store.close()
    (req,) = (tmp_path / "logs").glob("requests/date=2025-11-26/hour=14/part-*.jsonl")
    (fb,) = (tmp_path / "logs").glob("feedback/date=2025-11-26/hour=14/part-*.jsonl")
    row, feedback = json.loads(req.read_text()), json.loads(fb.read_text())
    assert row["request_id"] == "r1" and "ann@example.org" not in json.dumps(row) and "212-555-0187" not in row["answers"][0]
    assert row["prompt"] == "my email is <EMAIL>" and feedback["score"] == 1 and "ann@example.org" not in feedback["preferred"]
    assert store.dropped == 0
