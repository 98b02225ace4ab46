"""The request log and the feedback store: JSON Lines under the log root, partitioned by
date and hour (`requests/date=2026-11-26/hour=14/part-<host>-<pid>.jsonl`, the same for
`feedback/`). Records are queued by the request path and written by a background thread in
batches (PII scrubbed there when configured), so logging costs a request nothing but a queue
put. A batch is appended and flushed as a whole; on an object store each batch is its own
object."""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from domainllm.serve.gateway.exchange import Exchange, record

log = logging.getLogger(__name__)

REQUESTS = "requests"
FEEDBACK = "feedback"


def partition(kind: str, at: float) -> str:
    t = time.gmtime(at)
    return f"{kind}/date={time.strftime('%Y-%m-%d', t)}/hour={time.strftime('%H', t)}"


class LogStore:
    def __init__(self, root: str, *, scrub: Callable[[str], str] | None = None, batch_s: float = 0.5, max_batch: int = 512) -> None:
        import fsspec

        self.root = root.rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.root)
        self.local = type(self.fs).__name__ == "LocalFileSystem"
        self.scrub, self.batch_s, self.max_batch = scrub, batch_s, max_batch
        self.part = f"part-{socket.gethostname()}-{os.getpid()}"
        self._seq = 0
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self.written = {REQUESTS: 0, FEEDBACK: 0}
        self._thread = threading.Thread(target=self._run, name="gateway-log", daemon=True)
        self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        self._queue.put((REQUESTS, exchange))

    def feedback(self, entry: dict[str, Any]) -> None:
        self._queue.put((FEEDBACK, {**entry, "received_at": entry.get("received_at", time.time())}))

    def close(self, timeout: float = 30) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def flush(self, timeout: float = 10) -> None:
        """Waits until everything queued so far is written."""
        done = threading.Event()
        self._queue.put(("flush", done))
        done.wait(timeout)

    def _run(self) -> None:
        pending: list[tuple[str, Any]] = []
        closing = False
        while not closing:
            deadline = time.monotonic() + self.batch_s
            flushes: list[threading.Event] = []
            while len(pending) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                if item[0] == "flush":
                    flushes.append(item[1])
                    break
                pending.append(item)
            if pending:
                try:
                    self._write(pending)
                except Exception:  # the log must never take the gateway down; say so loudly
                    log.exception("request log: could not write %d records to %s", len(pending), self.root)
                pending = []
            for event in flushes:
                event.set()

    def _write(self, items: list[tuple[str, Any]]) -> None:
        groups: dict[str, list[str]] = {}
        for kind, item in items:
            rec = record(item, self.scrub) if kind == REQUESTS else self._feedback_record(item)
            groups.setdefault(partition(kind, rec["received_at"]), []).append(json.dumps(rec, ensure_ascii=False))
            self.written[kind] += 1
        for folder, lines in groups.items():
            data = ("\n".join(lines) + "\n").encode()
            if self.local:
                os.makedirs(f"{self.path}/{folder}", exist_ok=True)
                with open(f"{self.path}/{folder}/{self.part}.jsonl", "ab") as fh:
                    fh.write(data)
                    fh.flush()
            else:
                self._seq += 1
                self.fs.pipe_file(f"{self.path}/{folder}/{self.part}-{self._seq:08d}.jsonl", data)

    def _feedback_record(self, entry: dict[str, Any]) -> dict[str, Any]:
        if self.scrub and isinstance(entry.get("preferred"), str):
            entry = {**entry, "preferred": self.scrub(entry["preferred"])}
        return entry
