"""`knowledge`: the domain knowledge base the gateway retrieves from: the cleaned domain
documents, chunked, embedded and written to a vector store, one version per run."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainllm.spec.base import SENSITIVE, Section

BUILTIN_EMBEDDING = "builtin:all-minilm-l6-v2"


class Chunking(Section):
    tokens: int = Field(default=200, ge=16, le=8192)
    """Chunk size in the embedding model's tokens (all-MiniLM-L6-v2 reads at most 256)."""
    overlap: int = Field(default=40, ge=0)
    """Tokens each chunk shares with the one before it."""

    @model_validator(mode="after")
    def _overlap(self) -> Chunking:
        if self.overlap >= self.tokens:
            raise ValueError(f"knowledge.chunking.overlap ({self.overlap}) must be below knowledge.chunking.tokens ({self.tokens})")
        return self


class Embedding(Section):
    model: str = BUILTIN_EMBEDDING
    """A sentence-transformers model folder (local path), or the packaged all-MiniLM-L6-v2."""
    batch_size: int = Field(default=64, ge=1)


class VectorStore(Section):
    backend: Literal["lancedb", "pgvector"] = "lancedb"
    """`lancedb`: embedded, a folder (or object-store URI) beside the artifacts; `pgvector`:
    a PostgreSQL server with the pgvector extension."""
    uri: str | None = None
    """lancedb: the database folder (default `<artifact_root>/knowledge`); pgvector: a
    `postgresql://user@host:port/db` URL, without the password."""
    password_env: str | None = None
    """pgvector: the environment variable that holds the password (never the spec)."""
    table: str | None = None
    """Default: the spec's name (with `-` and `.` as `_`)."""

    @field_validator("uri")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value and re.match(r"^[a-z+]+://[^/@:]*:[^/@]+@", value):  # a password (an empty one is none)
            raise ValueError(f"{SENSITIVE}knowledge.store.uri must not carry a password: put it in the variable named "
                             f"by knowledge.store.password_env")  # fmt: skip
        return value

    @model_validator(mode="after")
    def _server_uri(self) -> VectorStore:
        if self.backend == "pgvector" and not (self.uri or "").startswith(("postgresql://", "postgres://")):
            raise ValueError("knowledge.store.backend pgvector needs knowledge.store.uri: postgresql://user@host:port/db")
        return self


class RetrievalEval(Section):
    path: str
    """JSONL of {"query", "relevant": [document ids, or source paths]} : recall@k and MRR of the index."""
    k: tuple[int, ...] = (1, 3, 5)


class KnowledgeConfig(Section):
    enabled: bool = True
    """Whether the `kb_index` stage builds the knowledge base (the gateway retrieves only from one)."""
    sources: tuple[str, ...] = ()
    """The sources whose documents are indexed (after PII scrubbing, compliance and
    decontamination); default: every `domain: domain` source."""
    chunking: Chunking = Chunking()
    embedding: Embedding = Embedding()
    store: VectorStore = VectorStore()
    eval: RetrievalEval | None = None
    """A labelled query set the index is scored on after each build."""
