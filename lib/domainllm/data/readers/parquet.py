"""Parquet: rows streamed in batches."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow.parquet as pq

from domainllm.data.readers.context import ReadContext
from domainllm.data.readers.files import SourceFile
from domainllm.data.readers.records_common import record_to_doc, row_raw
from domainllm.data.records import Doc, InputError, Reject

_BATCH_ROWS = 1024


def read_parquet(ctx: ReadContext, f: SourceFile) -> Iterator[Doc | Reject]:
    try:
        fh = f.fs.open(f.path, "rb")
        pf = pq.ParquetFile(fh)
    except Exception as exc:  # pyarrow raises several types for corrupt or unreadable files
        raise InputError(f"source {ctx.source.name!r}: cannot read Parquet file {f.path}: {exc}") from None
    with fh:
        columns = pf.schema_arrow.names
        if ctx.source.text_field not in columns:
            raise InputError(
                f"source {ctx.source.name!r}: Parquet file {f.path} has no column {ctx.source.text_field!r} "
                f"(columns: {columns}); set sources[].text_field to the text column"
            )
        row_number = 0
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS):
            for row in batch.to_pylist():
                row_number += 1
                ctx.counts["records_in"] += 1
                yield record_to_doc(ctx, row, f.relpath, row_number, row_raw(row))
