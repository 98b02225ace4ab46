"""The request log and the feedback store: JSON Lines under the log root, partitioned by
date and hour (`requests/date=2026-11-26/hour=14/part-<host>-<pid>.jsonl`, the same for
`feedback/`).

The request path only puts the exchange on a queue; a writer *process* (not a thread: PII
scrubbing is CPU-heavy and must not hold the gateway's GIL) builds the records, scrubs them
when configured, and appends them in batches (flushed per batch; on an object store each
batch is its own object). If the writer falls behind by `max_queue` exchanges, further ones
are not logged but counted (`dropped`, and the gateway's `log_dropped` metric): serving never
waits for its log."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import queue
import socket
import time
from typing import Any

from domainllm.serve.gateway.exchange import Exchange, record

log = logging.getLogger(__name__)

REQUESTS = "requests"
FEEDBACK = "feedback"


def partition(kind: str, at: float) -> str:
    t = time.gmtime(at)
    return f"{kind}/date={time.strftime('%Y-%m-%d', t)}/hour={time.strftime('%H', t)}"


class LogStore:
    def __init__(self, root: str, *, scrub_pii: bool = True, batch_s: float = 0.5, max_batch: int = 512,
                 max_queue: int = 100_000) -> None:  # fmt: skip
        self.root = root.rstrip("/")
        ctx = mp.get_context("spawn")  # a fresh interpreter: nothing of the event loop is forked
        self._queue = ctx.Queue(maxsize=max_queue)
        self._flushed = ctx.Value("q", 0)
        self._flush_seq = 0
        self.dropped = 0
        part = f"part-{socket.gethostname()}-{os.getpid()}"
        self._proc = ctx.Process(target=_writer, args=(self._queue, self._flushed, self.root, scrub_pii, batch_s, max_batch, part),
                                 name="gateway-log-writer", daemon=True)  # fmt: skip
        self._proc.start()

    def submit(self, exchange: Exchange) -> None:
        try:
            self._queue.put_nowait((REQUESTS, exchange))
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("request log: the writer is %d behind; %d exchanges not logged so far", self._queue.qsize(), self.dropped)

    def feedback(self, entry: dict[str, Any]) -> None:
        self._queue.put((FEEDBACK, {**entry, "received_at": entry.get("received_at", time.time())}), timeout=5)

    def flush(self, timeout: float = 30) -> bool:
        """Waits until everything queued so far is written; False on timeout."""
        self._flush_seq += 1
        self._queue.put(("flush", self._flush_seq))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._flushed.value >= self._flush_seq:
                return True
            time.sleep(0.02)
        return False

    def close(self, timeout: float = 30) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._queue.put(None, timeout=timeout)
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()


def _writer(q, flushed, root: str, scrub_pii: bool, batch_s: float, max_batch: int, part: str) -> None:
    import fsspec

    scrub = None
    if scrub_pii:
        from domainllm.data.pii.scrubber import Scrubber

        scrubber = Scrubber()

        def scrub(text: str) -> str:
            return scrubber.scrub(text)[0]

    fs, path = fsspec.core.url_to_fs(root)
    local = type(fs).__name__ == "LocalFileSystem"
    seq = 0
    closing = False
    while not closing:
        pending: list[tuple[str, Any]] = []
        marks: list[int] = []
        deadline = time.monotonic() + batch_s
        while len(pending) < max_batch:
            try:
                item = q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                closing = True
                break
            if item[0] == "flush":
                marks.append(item[1])
                break
            pending.append(item)
        if pending:
            groups: dict[str, list[str]] = {}
            for kind, item in pending:
                try:
                    rec = record(item, scrub) if kind == REQUESTS else _feedback_record(item, scrub)
                except Exception:  # one odd exchange must not stop the log
                    logging.getLogger(__name__).exception("request log: could not make a record")
                    continue
                groups.setdefault(partition(kind, rec["received_at"]), []).append(json.dumps(rec, ensure_ascii=False))
            for folder, lines in groups.items():
                data = ("\n".join(lines) + "\n").encode()
                try:
                    if local:
                        os.makedirs(f"{path}/{folder}", exist_ok=True)
                        with open(f"{path}/{folder}/{part}.jsonl", "ab") as fh:
                            fh.write(data)
                    else:
                        seq += 1
                        fs.pipe_file(f"{path}/{folder}/{part}-{seq:08d}.jsonl", data)
                except OSError:
                    logging.getLogger(__name__).exception("request log: could not write %d records to %s", len(lines), root)
        if marks:
            flushed.value = max(marks)


def _feedback_record(entry: dict[str, Any], scrub) -> dict[str, Any]:
    if scrub and isinstance(entry.get("preferred"), str):
        entry = {**entry, "preferred": scrub(entry["preferred"])}
    if scrub and isinstance(entry.get("comment"), str):
        entry = {**entry, "comment": scrub(entry["comment"])}
    return entry
