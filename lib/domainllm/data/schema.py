"""The fixed Parquet schemas passed between data stages."""

from __future__ import annotations

import pyarrow as pa

DOCS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),  # "domain" | "general"
        pa.field("lang", pa.string(), nullable=False),  # natural or programming language; "und" if unknown
        pa.field("kind", pa.string(), nullable=False),  # "text" | "code"
        pa.field("metadata", pa.large_string(), nullable=False),  # JSON object: path, line, extra fields
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("line", pa.int64()),  # 1-based line or row; null for whole files
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("raw", pa.large_binary()),  # the rejected bytes; null when the file itself is the record
    ]
)
