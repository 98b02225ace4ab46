"""The request log under faults: a log writer that dies is restarted (reported in /health and
the metrics) and the new one never overwrites what the old one wrote; the queue is bounded by
bytes; feedback never waits on a log that cannot take it (503, retry later)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from domainllm.serve.gateway.exchange import Exchange
from domainllm.serve.gateway.routes import Route, write_routes
from domainllm.serve.gateway.store import LogStore
from tests.lib.serve.gateway.helpers import running_gateway, stub_backend

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "What does List::Util do?"}], "max_tokens": 8}


def _ex(rid: str, body: bytes = b"{}") -> Exchange:
    return Exchange(rid, 1764165600.0, "chat.completions", "stable", "1", {"messages": []}, status=200, body=body)


def test_a_dead_writer_is_replaced_and_nothing_is_overwritten(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path / "logs"), batch_s=0.05)
    try:
        store.submit(_ex("before"))
        assert store.flush()
        os.kill(store._proc.pid, signal.SIGKILL)
        store._proc.join(10)
        t0 = time.monotonic()
        assert store.feedback({"request_id": "x"}) is False and time.monotonic() - t0 < 0.5  # refused at once, never blocks
        store.submit(_ex("lost-while-dead"))
        assert store.dropped == 1 and not store.alive
        assert store.check_writer() and store.restarts == 1 and store.alive
        store.submit(_ex("after"))
        assert store.flush()
    finally:
        store.close()
    parts = sorted((tmp_path / "logs").glob("requests/*/*/*.jsonl"))
    assert len(parts) == 2  # one part per writer: the new one did not append to or replace the old one's
    ids = [json.loads(line)["request_id"] for p in parts for line in p.read_text().splitlines()]
    assert sorted(ids) == ["after", "before"]


def test_the_queue_is_bounded_by_bytes(tmp_path: Path) -> None:
    store = LogStore(str(tmp_path / "logs"), batch_s=0.05, max_queue_bytes=4096)
    try:
        store.submit(_ex("small", b"x" * 100))
        store.submit(_ex("huge", b"x" * 10_000))  # more than the queue may hold: counted, not queued
        assert store.dropped == 1
        assert store.flush() and store.pending_bytes == 0
    finally:
        store.close()
    rows = [json.loads(line) for p in (tmp_path / "logs").glob("requests/*/*/*.jsonl") for line in p.read_text().splitlines()]
    assert [r["request_id"] for r in rows] == ["small"]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_the_gateway_restarts_its_writer_and_says_so(tmp_path: Path) -> None:
    routes, logs = tmp_path / "routes.json", tmp_path / "logs"
    with stub_backend() as (backend, _):
        write_routes(routes, [Route("stable", backend, "1", 100)])
        with running_gateway(routes, logs) as gw, gw.client() as client:
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
            _wait_lines(logs, 1)  # written (what is still queued when a writer dies is counted as lost)
            gateway_pid = next(p for p in _children(os.getpid()) if b"serve\x00gateway" in Path(f"/proc/{p}/cmdline").read_bytes())
            (writer,) = [p for p in _children(gateway_pid) if b"multiprocessing" in Path(f"/proc/{p}/cmdline").read_bytes()
                         and b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]  # fmt: skip
            os.kill(writer, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while httpx.get(f"{gw.admin_url}/health").json()["log_writer"]["restarts"] < 1:
                assert time.monotonic() < deadline, "the writer was not restarted"
                time.sleep(0.2)
            health = httpx.get(f"{gw.admin_url}/health").json()["log_writer"]
            assert health["alive"] and health["restarts"] == 1
            assert "domainllm_gateway_log_writer_restarts 1.0" in httpx.get(f"{gw.admin_url}/metrics").text
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
            _wait_lines(logs, 2)
    assert len(list(logs.glob("requests/*/*/*.jsonl"))) == 2


def _wait_lines(logs: Path, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len([line for p in logs.glob("requests/*/*/*.jsonl") for line in p.read_text().splitlines()]) < n:
        assert time.monotonic() < deadline, f"fewer than {n} request records after {timeout}s"
        time.sleep(0.2)
