"""Stage 3 of dedup (sharded): drop the documents the clustering step named, shard by shard."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from domainllm.data.records import Removal


class DuplicateFilter:
    """A `DocStep` over the duplicates table: rows are matched by their place in the corpus
    (`shard_number << 32 | row`), so documents with repeated ids are told apart."""

    name = "dedup"

    def __init__(self, duplicates: pa.Table) -> None:
        self._by_key = {
            key: Removal(reason, f"cluster of {size}", dup_of)
            for key, reason, size, dup_of in zip(
                duplicates.column("key").to_pylist(),
                duplicates.column("reason").to_pylist(),
                duplicates.column("cluster_size").to_pylist(),
                duplicates.column("duplicate_of").to_pylist(),
                strict=True,
            )
        }
        self._next_key = 0

    def start_shard(self, shard_number: int) -> None:
        self._next_key = shard_number << 32

    def batch(self, rows: Sequence[dict]) -> list[Removal | None]:
        first = self._next_key
        self._next_key += len(rows)
        return [self._by_key.get(first + i) for i in range(len(rows))]
