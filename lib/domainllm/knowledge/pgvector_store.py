"""The server vector store: PostgreSQL with pgvector. One table per knowledge base with a
`kb_version` column; a build replaces its version's rows in one transaction (a killed build
leaves the versions before it untouched); an HNSW cosine index, searched with pgvector's
iterative scan so a version filter still returns k rows."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from domainllm.knowledge.store import Hit, hit_from_row

log = logging.getLogger(__name__)
_COLUMNS = ("chunk_id", "doc_id", "source", "title", "chunk_index", "start_char", "end_char", "text")


class PgvectorStore:
    def __init__(self, uri: str, table: str, password_env: str | None = None) -> None:
        self.uri, self.table, self.password_env = uri, table, password_env
        self.version: str | None = None
        self._conn: Any = None

    def connect(self) -> Any:
        import psycopg2
        from pgvector.psycopg2 import register_vector

        if self._conn is None or self._conn.closed:
            password = os.environ.get(self.password_env) if self.password_env else None
            if self.password_env and password is None:
                raise RuntimeError(f"knowledge.store.password_env names {self.password_env}, which is not set")
            try:
                self._conn = psycopg2.connect(self.uri, **({"password": password} if password else {}))
            except psycopg2.OperationalError as exc:  # its message names host and user, never the password
                raise RuntimeError(f"cannot connect to the pgvector store: {str(exc).strip()}") from None
            with self._conn, self._conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(self._conn)
        return self._conn

    def _ident(self) -> Any:
        from psycopg2 import sql

        return sql.Identifier(self.table)

    def write(self, label: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> dict[str, Any]:
        import numpy as np
        from psycopg2 import sql
        from psycopg2.extras import execute_values

        dims = schema.field("vector").type.list_size
        conn, t = self.connect(), self._ident()
        count = 0
        with conn, conn.cursor() as cur:  # one transaction: all of this version or none of it
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (kb_version text NOT NULL, chunk_id text NOT NULL, doc_id text, "
                                "source text, title text, chunk_index int, start_char int, end_char int, text text, "
                                "embedding vector({}) NOT NULL, PRIMARY KEY (kb_version, chunk_id))").format(t, sql.Literal(dims)))
            cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)")
                        .format(sql.Identifier(f"{self.table}_embedding_hnsw"), t))  # fmt: skip
            cur.execute(sql.SQL("DELETE FROM {} WHERE kb_version = %s").format(t), (label,))
            insert = sql.SQL("INSERT INTO {} (kb_version, " + ", ".join(_COLUMNS) + ", embedding) VALUES %s").format(t)
            for batch in batches:
                cols = batch.to_pydict()
                vectors = np.asarray(batch.column("vector").to_numpy(zero_copy_only=False).tolist(), dtype=np.float32)
                rows = [(label, *(cols[c][i] for c in _COLUMNS), vectors[i]) for i in range(batch.num_rows)]
                execute_values(cur, insert.as_string(cur), rows, page_size=500)
                count += batch.num_rows
        log.info("knowledge: pgvector table %s version %s: %d chunks", self.table, label, count)
        return {"backend": "pgvector", "uri": self.uri, "table": self.table, "version": label, "label": label,
                "count": count, "password_env": self.password_env}  # fmt: skip

    def at(self, version: str) -> PgvectorStore:
        self.version = str(version)
        return self

    def count(self) -> int:
        from psycopg2 import sql

        with self.connect().cursor() as cur:
            cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE kb_version = %s").format(self._ident()), (self.version,))
            return int(cur.fetchone()[0])

    def search(self, vector: Sequence[float], k: int, sources: Sequence[str] | None = None) -> list[Hit]:
        import numpy as np
        from psycopg2 import sql

        conn, query = self.connect(), np.asarray(vector, dtype=np.float32)
        where = sql.SQL("kb_version = %s" + (" AND source = ANY(%s)" if sources else ""))
        params: list[Any] = [query, self.version, *([list(sources)] if sources else []), query, k]
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cur.execute(sql.SQL("SELECT chunk_id, doc_id, source, title, chunk_index, text, 1 - (embedding <=> %s) AS score "
                                "FROM {} WHERE {} ORDER BY embedding <=> %s LIMIT %s").format(self._ident(), where), params)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return [hit_from_row(r, r["score"]) for r in rows]
