"""Run a per-document step over a folder of document shards.

Shard `part-NNNNN.parquet` of the input becomes shard `part-NNNNN.parquet` of the output
(kept documents) and of `removed/` (removed ones, with `reason`, `detail`, `duplicate_of`),
so shards can be processed by independent workers and reruns are byte-identical.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from domainllm.artifacts.fs import join
from domainllm.data.docs import shard_paths
from domainllm.data.records import Removal
from domainllm.data.schema import DOCS_SCHEMA
from domainllm.data.shards import write_parquet
from domainllm.progress import Progress

log = logging.getLogger(__name__)

REMOVED_DIR = "removed"
REMOVED_SCHEMA = DOCS_SCHEMA.append(pa.field("reason", pa.string(), nullable=False)).append(
    pa.field("detail", pa.string(), nullable=False)
).append(pa.field("duplicate_of", pa.string()))
_BATCH_ROWS = 1024


class DocStep(Protocol):
    name: str

    def batch(self, rows: Sequence[dict]) -> list[Removal | None]:
        """One verdict per row, in order: None keeps the document. A step that also
        defines `start_shard(shard_number)` is told where each shard starts."""
        ...


def run_step(
    step: DocStep,
    in_fs: fsspec.AbstractFileSystem,
    in_dir: str,
    out_fs: fsspec.AbstractFileSystem,
    out_dir: str,
    *,
    shard_index: int = 0,
    num_shards: int = 1,
    compression: str = "zstd",
) -> Counter[str]:
    """Apply `step` to the input shards this worker owns (`n % num_shards == shard_index`)."""
    counts: Counter[str] = Counter()
    progress = Progress(log, step.name)
    names = DOCS_SCHEMA.names
    for n, path in enumerate(shard_paths(in_fs, in_dir)):
        if n % num_shards != shard_index:
            continue
        kept: list[dict] = []
        removed: list[dict] = []
        if hasattr(step, "start_shard"):
            step.start_shard(n)
        with in_fs.open(path, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=_BATCH_ROWS, columns=names):
                rows = batch.to_pylist()
                for row, verdict in zip(rows, step.batch(rows), strict=True):
                    if verdict is None:
                        kept.append(row)
                    else:
                        removed.append({**row, "reason": verdict.reason, "detail": verdict.detail,
                                        "duplicate_of": verdict.duplicate_of})  # fmt: skip
                        counts[f"removed.{verdict.reason}"] += 1
                counts["docs_in"] += len(rows)
                progress.update(docs=counts["docs_in"], removed=len(removed))
        name = path.rsplit("/", 1)[-1]
        write_parquet(out_fs, join(out_dir, name), pa.Table.from_pylist(kept, schema=DOCS_SCHEMA), compression)
        if removed:
            write_parquet(out_fs, join(out_dir, REMOVED_DIR, name), pa.Table.from_pylist(removed, schema=REMOVED_SCHEMA),
                          compression)  # fmt: skip
        counts["docs_out"] += len(kept)
        counts["removed"] += len(removed)
        counts["shards"] += 1
    progress.log(docs=counts["docs_in"], kept=counts["docs_out"])
    return counts
