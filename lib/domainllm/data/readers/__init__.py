"""Readers for every source format. `read_source` streams a source's docs and rejects."""

from __future__ import annotations

from collections.abc import Iterator

from domainllm.data.readers.context import ReadContext
from domainllm.data.readers.files import SourceFile, file_format, list_files
from domainllm.data.readers.jsonl import read_jsonl
from domainllm.data.readers.parquet import read_parquet
from domainllm.data.readers.whole_file import read_whole_file
from domainllm.data.records import Doc, Reject


def read_file(ctx: ReadContext, f: SourceFile) -> Iterator[Doc | Reject]:
    fmt = file_format(f.relpath, ctx.source)
    ctx.counts["files"] += 1
    if fmt == "jsonl":
        return read_jsonl(ctx, f)
    if fmt == "parquet":
        return read_parquet(ctx, f)
    return read_whole_file(ctx, f, as_code=fmt == "code")


__all__ = ["ReadContext", "SourceFile", "list_files", "read_file"]
