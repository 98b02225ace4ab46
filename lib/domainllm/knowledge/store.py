"""Where the chunks and their embeddings live. A build writes one version and returns its
reference (a JSON-able dict the stage's manifest keeps and the gateway opens); a reader
searches exactly that version, whatever was written after it.

- `lancedb` (embedded default): a LanceDB table per knowledge base; each build is a new
  table version, tagged with the run. Nothing to run beside us, versions and time travel
  built in, files on local disk or an object store.
- `pgvector` (server option): one PostgreSQL table with a `kb_version` column and an HNSW
  index; a build replaces its version's rows in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from domainllm.spec.knowledge import VectorStore as StoreConfig


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    source: str
    title: str
    index: int
    text: str
    score: float
    """Cosine similarity to the query."""

    def citation(self, number: int) -> dict[str, Any]:
        return {"number": number, "chunk_id": self.chunk_id, "doc_id": self.doc_id, "source": self.source,
                "title": self.title, "chunk": self.index, "score": round(self.score, 4)}  # fmt: skip


def chunk_schema(dims: int) -> pa.Schema:
    return pa.schema([("chunk_id", pa.string()), ("doc_id", pa.string()), ("source", pa.string()), ("title", pa.string()),
                      ("chunk_index", pa.int32()), ("start_char", pa.int32()), ("end_char", pa.int32()),
                      ("text", pa.string()), ("vector", pa.list_(pa.float32(), dims))])  # fmt: skip


class Reader(Protocol):
    def search(self, vector: Sequence[float], k: int, sources: Sequence[str] | None = None) -> list[Hit]: ...

    def count(self) -> int: ...


class Writer(Protocol):
    def write(self, label: str, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> dict[str, Any]:
        """Writes one version from `batches`; returns its reference."""
        ...


def table_name(cfg: StoreConfig, spec_name: str) -> str:
    return cfg.table or spec_name.replace("-", "_").replace(".", "_")


def writer(cfg: StoreConfig, spec_name: str, artifact_root: str) -> Writer:
    if cfg.backend == "pgvector":
        from domainllm.knowledge.pgvector_store import PgvectorStore

        return PgvectorStore(cfg.uri or "", table_name(cfg, spec_name), cfg.password_env)
    from domainllm.artifacts.fs import join
    from domainllm.knowledge.lance_store import LanceStore

    return LanceStore(cfg.uri or join(artifact_root, "knowledge"), table_name(cfg, spec_name))


def reader(ref: dict[str, Any]) -> Reader:
    """Opens the version a build wrote (`ref`, from the `kb_index` manifest)."""
    if ref["backend"] == "pgvector":
        from domainllm.knowledge.pgvector_store import PgvectorStore

        return PgvectorStore(ref["uri"], ref["table"], ref.get("password_env")).at(ref["version"])
    from domainllm.knowledge.lance_store import LanceStore

    return LanceStore(ref["uri"], ref["table"]).at(ref["version"])


def hit_from_row(row: dict[str, Any], score: float) -> Hit:
    return Hit(row["chunk_id"], row["doc_id"], row["source"], row["title"], int(row["chunk_index"]), row["text"], float(score))
