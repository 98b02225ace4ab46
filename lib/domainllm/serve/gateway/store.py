"""The request log and the feedback store: JSON Lines under the log root, partitioned by
date and hour (`requests/date=2026-11-26/hour=14/part-<host>-<pid>-<start>-<n>.jsonl`, the same
for `feedback/`).

The request path only puts the exchange on a queue; a writer *process* (not a thread: PII
scrubbing is CPU-heavy and must not hold the gateway's GIL) builds the records, scrubs them
when configured, and appends them in batches (flushed per batch; on an object store each
batch is its own object).

Serving never waits for its log: the queue is bounded by count and by bytes (`max_queue`,
`max_queue_bytes`); beyond either, exchanges are counted (`dropped`), not logged, and
feedback is refused with a 503 the client can retry. The writer is supervised: the gateway
checks it every second and starts a new one when it died (`restarts`, in /health and the
metrics). Each writer writes its own parts (its start time and number are in their names),
so a restarted writer never overwrites what an earlier one wrote; what was still queued for
the dead one is counted as lost."""

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


def exchange_bytes(ex: Exchange) -> int:
    return len(ex.body) + ex.request_bytes


class LogStore:
    def __init__(self, root: str, *, scrub_pii: bool = True, batch_s: float = 0.5, max_batch: int = 512,
                 max_queue: int = 100_000, max_queue_bytes: int = 256 * 1024 * 1024) -> None:  # fmt: skip
        self.root = root.rstrip("/")
        self._ctx = mp.get_context("spawn")  # a fresh interpreter: nothing of the event loop is forked
        self._args = (scrub_pii, batch_s, max_batch)
        self.max_queue, self.max_queue_bytes = max_queue, max_queue_bytes
        self._flushed = self._ctx.Value("q", 0)
        self._flush_seq = 0
        self.dropped = 0
        self.lost = 0
        """Exchanges and feedback queued for a writer that died before writing them."""
        self.restarts = 0
        self._closing = False
        self._start_writer()

    def _start_writer(self) -> None:
        self._queue = self._ctx.Queue(maxsize=self.max_queue)
        self._pending = self._ctx.Value("q", 0)  # bytes queued and not yet written
        part = f"part-{socket.gethostname()}-{os.getpid()}-{int(time.time() * 1000)}-{self.restarts}"
        self._proc = self._ctx.Process(target=_writer, args=(self._queue, self._flushed, self._pending, self.root, *self._args, part),
                                       name="gateway-log-writer", daemon=True)  # fmt: skip
        self._proc.start()

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    @property
    def pending_bytes(self) -> int:
        return int(self._pending.value)

    def check_writer(self) -> bool:
        """Starts a new writer when the current one died; True when it did."""
        if self._closing or self._proc.is_alive():
            return False
        with contextlib.suppress(NotImplementedError, OSError, ValueError):
            self.lost += self._queue.qsize()
        log.error("request log: the writer process died (exit code %s); starting a new one (restart %d)",
                  self._proc.exitcode, self.restarts + 1)  # fmt: skip
        with contextlib.suppress(Exception):
            self._queue.close()
            self._queue.cancel_join_thread()
        self.restarts += 1
        self._start_writer()
        return True

    def _put(self, item: tuple, size: int) -> bool:
        if self._pending.value + size > self.max_queue_bytes or not self._proc.is_alive():
            return False
        try:
            self._queue.put_nowait((*item, size))
        except (queue.Full, ValueError, OSError):
            return False
        with self._pending.get_lock():
            self._pending.value += size
        return True

    def submit(self, exchange: Exchange) -> None:
        if not self._put((REQUESTS, exchange), exchange_bytes(exchange)):
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("request log: the writer is behind or restarting; %d exchanges not logged so far", self.dropped)

    def feedback(self, entry: dict[str, Any]) -> bool:
        """Queues feedback; False when the log cannot take it now (the caller answers 503)."""
        entry = {**entry, "received_at": entry.get("received_at", time.time())}
        return self._put((FEEDBACK, entry), len(json.dumps(entry)))

    def flush(self, timeout: float = 30) -> bool:
        """Waits until everything queued so far is written; False on timeout. Not for the
        event loop (it blocks): tests and shutdown."""
        self._flush_seq += 1
        self._queue.put(("flush", self._flush_seq, 0), timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._flushed.value >= self._flush_seq:
                return True
            time.sleep(0.02)
        return False

    def close(self, timeout: float = 30) -> None:
        self._closing = True
        with contextlib.suppress(ValueError, OSError, queue.Full):
            self._queue.put(None, timeout=timeout)
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()


def _writer(q, flushed, pending, root: str, scrub_pii: bool, batch_s: float, max_batch: int, part: str) -> None:
    import fsspec

    scrub = None
    if scrub_pii:
        from domainllm.data.pii.scrubber import Scrubber

        scrubber = Scrubber(names_en=False, names_zh=False)  # structured PII at once; names are scrubbed when the flywheel curates

        def scrub(text: str) -> str:
            return scrubber.scrub(text)[0]

    fs, path = fsspec.core.url_to_fs(root)
    local = type(fs).__name__ == "LocalFileSystem"
    seq = 0
    closing = False
    while not closing:
        batch: list[tuple[str, Any]] = []
        marks: list[int] = []
        size = 0
        deadline = time.monotonic() + batch_s
        while len(batch) < max_batch:
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
            batch.append((item[0], item[1]))
            size += item[2]
        if batch:
            groups: dict[str, list[str]] = {}
            for kind, item in batch:
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
        if size:
            with pending.get_lock():
                pending.value -= size
        if marks:
            flushed.value = max(marks)


def _feedback_record(entry: dict[str, Any], scrub) -> dict[str, Any]:
    if scrub and isinstance(entry.get("preferred"), str):
        entry = {**entry, "preferred": scrub(entry["preferred"])}
    if scrub and isinstance(entry.get("comment"), str):
        entry = {**entry, "comment": scrub(entry["comment"])}
    return entry
