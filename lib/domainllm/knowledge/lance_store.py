"""The embedded vector store: a LanceDB table per knowledge base, a table version per build
(tagged `<label>`), exact (flat) search below `ANN_MIN_ROWS` chunks and an IVF-PQ index above."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from domainllm.knowledge.store import Hit, hit_from_row

log = logging.getLogger(__name__)

ANN_MIN_ROWS = 100_000
"""Below this many chunks a flat scan takes milliseconds and is exact."""
_COLUMNS = ["chunk_id", "doc_id", "source", "title", "chunk_index", "text"]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LanceStore:
    def __init__(self, uri: str, table: str) -> None:
        import lancedb

        self.uri, self.table = uri, table
        self.db = lancedb.connect(uri)
        self._tbl: Any = None

    def write(self, label: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> dict[str, Any]:
        data = pa.RecordBatchReader.from_batches(schema, iter(batches))
        tbl = self.db.create_table(self.table, data=data, schema=schema, mode="overwrite")
        rows = tbl.count_rows()
        if rows >= ANN_MIN_ROWS:
            from lancedb.index import IvfPq

            tbl.create_index("vector", config=IvfPq(distance_type="cosine"))
        version = tbl.version
        with contextlib.suppress(ValueError, RuntimeError):  # a forced rebuild of the same run: point the tag at it
            tbl.tags.delete(label)
        tbl.tags.create(label, version)
        log.info("knowledge: LanceDB table %s version %d (%s): %d chunks", self.table, version, label, rows)
        return {"backend": "lancedb", "uri": self.uri, "table": self.table, "version": version, "label": label, "count": rows}

    def at(self, version: int | str) -> LanceStore:
        self._tbl = self.db.open_table(self.table)
        self._tbl.checkout(int(version))
        return self

    def count(self) -> int:
        return self._tbl.count_rows()

    def search(self, vector: Sequence[float], k: int, sources: Sequence[str] | None = None) -> list[Hit]:
        query = self._tbl.search(list(vector)).distance_type("cosine").limit(k).select(_COLUMNS)
        if sources:
            query = query.where(f"source IN ({', '.join(_quote(s) for s in sources)})", prefilter=True)
        return [hit_from_row(row, 1.0 - row["_distance"]) for row in query.to_list()]
