"""Reading a data stage's output shards back (the `part-*.parquet` files of a folder)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import fsspec
import pyarrow.parquet as pq

from domainllm.artifacts.fs import join


def shard_paths(fs: fsspec.AbstractFileSystem, folder: str) -> list[str]:
    return sorted(fs.glob(join(folder, "part-*.parquet")))


def iter_docs(
    fs: fsspec.AbstractFileSystem,
    folder: str,
    *,
    columns: Iterable[str] = ("id", "text", "source"),
    sources: Iterable[str] | None = None,
    batch_rows: int = 1024,
) -> Iterator[dict]:
    """Stream rows in shard order; optionally only those of the given sources."""
    wanted = set(sources) if sources is not None else None
    cols = list(columns)
    for path in shard_paths(fs, folder):
        with fs.open(path, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=batch_rows, columns=cols):
                for row in batch.to_pylist():
                    if wanted is None or row["source"] in wanted:
                        yield row
