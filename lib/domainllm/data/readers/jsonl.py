"""JSON Lines: one record per line, streamed, memory bounded by the largest accepted line."""

from __future__ import annotations

import json
from collections.abc import Iterator

from domainllm.data.readers.context import ReadContext
from domainllm.data.readers.files import SourceFile
from domainllm.data.readers.records_common import record_to_doc
from domainllm.data.records import Doc, InputError, Reason, Reject

_SKIP_CHUNK = 1024 * 1024


def _lines(fh, limit: int) -> Iterator[tuple[bytes | None, int]]:
    """(line, size) pairs; a line longer than `limit` is consumed without being kept
    and yielded as (None, size)."""
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            size = len(line)
            while True:
                rest = fh.readline(_SKIP_CHUNK)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None, size
            continue
        yield line, len(line)


def read_jsonl(ctx: ReadContext, f: SourceFile) -> Iterator[Doc | Reject]:
    limit = ctx.cfg.max_record_bytes
    try:
        fh = f.fs.open(f.path, "rb", compression="infer")
    except OSError as exc:
        raise InputError(f"source {ctx.source.name!r}: cannot read input file {f.path}: {exc}") from None
    with fh:
        for lineno, (line, size) in enumerate(_lines(fh, limit), start=1):
            if line is None:
                yield ctx.reject(
                    f.relpath, lineno, Reason.RECORD_TOO_LARGE,
                    f"line is {size} bytes, over data.ingest.max_record_bytes={limit}", None,
                )  # fmt: skip
                continue
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            stripped = line.strip()
            if not stripped:
                ctx.counts["blank_lines"] += 1
                continue
            ctx.counts["records_in"] += 1
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield ctx.reject(
                    f.relpath, lineno, Reason.INVALID_UTF8,
                    f"invalid UTF-8 byte 0x{stripped[exc.start]:02x} at offset {exc.start}", stripped,
                )  # fmt: skip
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield ctx.reject(f.relpath, lineno, Reason.INVALID_JSON, f"{exc.msg} at column {exc.colno}", stripped)
                continue
            yield record_to_doc(ctx, record, f.relpath, lineno, stripped)
