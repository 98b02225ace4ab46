"""Buffered Parquet shard writer: memory is bounded by one shard, not by the corpus."""

from __future__ import annotations

from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from domainllm.artifacts.fs import join

_ROW_GROUP_ROWS = 10_000


def write_parquet(fs: fsspec.AbstractFileSystem, path: str, table: pa.Table, compression: str = "zstd",
                  row_group_size: int = _ROW_GROUP_ROWS) -> None:  # fmt: skip
    """One Parquet file, its folder created first (on an object store: one upload)."""
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as fh:
        pq.write_table(table, fh, compression=None if compression == "none" else compression,
                       row_group_size=row_group_size)  # fmt: skip


class ShardWriter:
    """Appends rows and closes a `part-NNNNN.parquet` shard whenever the record or byte
    budget is reached. File names and contents depend only on the rows written, so the
    same input always gives byte-identical shards."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        folder: str,
        schema: pa.Schema,
        *,
        max_records: int,
        max_bytes: int,
        compression: str = "zstd",
        write_empty: bool = False,
    ) -> None:
        self.fs, self.folder, self.schema = fs, folder, schema
        self.max_records, self.max_bytes = max_records, max_bytes
        self.compression = None if compression == "none" else compression
        self.write_empty = write_empty
        self.files: list[str] = []
        self.records = 0
        self._rows: list[dict[str, Any]] = []
        self._bytes = 0

    def add(self, row: dict[str, Any], nbytes: int) -> None:
        if self._rows and (len(self._rows) >= self.max_records or self._bytes + nbytes > self.max_bytes):
            self._flush()
        self._rows.append(row)
        self._bytes += nbytes

    def _flush(self) -> None:
        table = pa.Table.from_pylist(self._rows, schema=self.schema)
        path = join(self.folder, f"part-{len(self.files):05d}.parquet")
        write_parquet(self.fs, path, table, self.compression or "none")
        self.files.append(path)
        self.records += len(self._rows)
        self._rows, self._bytes = [], 0

    def close(self) -> list[str]:
        if self._rows or (self.write_empty and not self.files):
            self._flush()
        return self.files
