"""Both vector stores behave the same: a build writes one version and answers with its
reference; a reader of that reference searches exactly that version (the nearest chunks
first, by cosine), optionally only some sources, whatever was written after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from domainllm.knowledge.store import chunk_schema, reader
from domainllm.spec.knowledge import VectorStore

DIMS = 8


def _batches(n: int, seed: int, sources=("docs", "code"), fail_after: int | None = None) -> Iterator[pa.RecordBatch]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for lo in range(0, n, 10):
        if fail_after is not None and lo >= fail_after:
            raise RuntimeError("embedding failed half-way")
        hi = min(n, lo + 10)
        rows = range(lo, hi)
        yield pa.RecordBatch.from_pydict({
            "chunk_id": [f"d{i}:0" for i in rows], "doc_id": [f"d{i}" for i in rows],
            "source": [sources[i % len(sources)] for i in rows], "title": [f"file{i}.pod" for i in rows],
            "chunk_index": [0] * len(rows), "start_char": [0] * len(rows), "end_char": [5] * len(rows),
            "text": [f"text {i}" for i in rows],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[lo:hi].reshape(-1)), DIMS)}, schema=chunk_schema(DIMS))  # fmt: skip
    return


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.concatenate([b.column("vector").to_numpy(zero_copy_only=False).tolist() for b in _batches(n, seed)]).astype(np.float32)


def _store(backend: str, tmp_path: Path, pg_uri: str | None):
    from domainllm.knowledge.store import writer

    if backend == "lancedb":
        return writer(VectorStore(uri=str(tmp_path / "kb")), "my-kb", str(tmp_path))
    from domainllm.knowledge.pgvector_store import PgvectorStore

    return PgvectorStore(pg_uri, "my_kb")  # the embedded server's socket URI


@pytest.fixture(params=["lancedb", "pgvector"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def test_versions_are_searched_as_they_were_written(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pg_uri = request.getfixturevalue("pg_uri") if backend == "pgvector" else None
    store = _store(backend, tmp_path, pg_uri)
    first = store.write("run-a", _batches(40, seed=1), chunk_schema(DIMS))
    second = store.write("run-b", _batches(25, seed=2), chunk_schema(DIMS))
    assert first["count"] == 40 and second["count"] == 25 and first["version"] != second["version"]
    assert first["table"] == "my_kb"

    old, new = reader(first), reader(second)
    assert old.count() == 40 and new.count() == 25
    v1 = _vectors(40, seed=1)
    hits = old.search(v1[7], k=3)
    assert hits[0].doc_id == "d7" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True) and len(hits) == 3
    assert new.search(_vectors(25, seed=2)[3], k=1)[0].doc_id == "d3"
    only_code = old.search(v1[8], k=5, sources=["code"])  # d8 is a "docs" chunk
    assert len(only_code) == 5 and {h.source for h in only_code} == {"code"} and "d8" not in {h.doc_id for h in only_code}
    assert hits[0].citation(1) == {"number": 1, "chunk_id": "d7:0", "doc_id": "d7", "source": "code", "title": "file7.pod",
                                   "chunk": 0, "score": pytest.approx(1.0, abs=1e-4)}  # fmt: skip


def test_a_build_that_fails_half_way_leaves_the_versions_before_it(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pg_uri = request.getfixturevalue("pg_uri") if backend == "pgvector" else None
    store = _store(backend, tmp_path, pg_uri)
    good = store.write("good", _batches(30, seed=3), chunk_schema(DIMS))
    with pytest.raises(RuntimeError, match="half-way"):
        store.write("broken", _batches(30, seed=4, fail_after=20), chunk_schema(DIMS))
    assert reader(good).count() == 30
    if backend == "pgvector":
        assert reader({**good, "version": "broken"}).count() == 0  # nothing of the failed build


def test_pgvector_refuses_a_missing_password_variable_without_leaking(pg_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from domainllm.knowledge.pgvector_store import PgvectorStore

    monkeypatch.delenv("KB_PASSWORD", raising=False)
    with pytest.raises(RuntimeError, match="KB_PASSWORD, which is not set"):
        PgvectorStore(pg_uri, "t", "KB_PASSWORD").connect()
    monkeypatch.setenv("KB_PASSWORD", "s3cret-value")
    with pytest.raises(RuntimeError, match="cannot connect to the pgvector store") as err:
        PgvectorStore("postgresql://kb@127.0.0.1:1/db", "t", "KB_PASSWORD").connect()
    assert "s3cret-value" not in str(err.value)


def test_the_spec_keeps_passwords_out(tmp_path: Path) -> None:
    from domainllm.spec import SpecError, parse_spec

    doc = {"name": "x", "artifact_root": str(tmp_path), "sources": [{"name": "s", "path": str(tmp_path), "domain": "domain"}],
           "base_model": {"path": str(tmp_path)},
           "knowledge": {"store": {"backend": "pgvector", "uri": "postgresql://kb:hunter2@db:5432/kb"}}}  # fmt: skip
    with pytest.raises(SpecError, match="must not carry a password") as err:
        parse_spec(doc, base_dir=tmp_path)
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match="needs knowledge.store.uri"):
        VectorStore(backend="pgvector")
