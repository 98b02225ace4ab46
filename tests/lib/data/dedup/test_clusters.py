"""Clustering: exact vs near reasons, chains, repeated ids, shard-wise keys, mismatched inputs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from domainllm.data.dedup import DuplicateFilter, find_duplicates, write_signatures
from domainllm.data.schema import DOCS_SCHEMA
from domainllm.data.steps import run_step
from domainllm.spec.dedup import DedupConfig

FS = LocalFileSystem()
BASE = " ".join(f"w{i} alpha{i % 7} beta{i % 11}" for i in range(60))


def write_docs(folder: Path, shards: list[list[tuple[str, str]]]) -> str:
    folder.mkdir(parents=True)
    for n, docs in enumerate(shards):
        rows = [{"id": i, "text": t, "source": "s", "domain": "domain", "lang": "en", "kind": "text", "metadata": "{}"}
                for i, t in docs]  # fmt: skip
        pq.write_table(pa.Table.from_pylist(rows, schema=DOCS_SCHEMA), folder / f"part-{n:05d}.parquet")
    return str(folder)


def dedup(tmp_path: Path, shards: list[list[tuple[str, str]]], cfg: DedupConfig | None = None, workers: int = 1):
    cfg = cfg or DedupConfig()
    docs = write_docs(tmp_path / "docs", shards)
    for w in range(workers):
        write_signatures(cfg, FS, docs, FS, str(tmp_path / "sig"), shard_index=w, num_shards=workers)
    result = find_duplicates(cfg, FS, str(tmp_path / "sig"), FS, docs)
    counts = run_step(DuplicateFilter(result.duplicates), FS, docs, FS, str(tmp_path / "out"))
    removed = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "removed").to_pylist()} if counts["removed"] else {}
    return result, counts, removed


def test_exact_and_near_duplicates_across_shards(tmp_path: Path) -> None:
    near = BASE.replace("w30 ", "changed ").upper()
    shards = [
        [("a", BASE), ("other", "Completely unrelated words " * 20)],
        [("a-copy", "  " + BASE + "\n"), ("a-near", near)],
        [("empty-1", "?!"), ("empty-2", "?!"), ("blank", "...")],
    ]
    result, counts, removed = dedup(tmp_path, shards, workers=2)
    assert removed["a-copy"]["reason"] == "exact_duplicate" and removed["a-copy"]["duplicate_of"] == "a"
    assert removed["a-near"]["reason"] == "near_duplicate" and removed["a-near"]["duplicate_of"] == "a"
    # documents without words are only ever exact duplicates of each other
    assert removed["empty-2"]["reason"] == "exact_duplicate" and "blank" not in removed
    assert set(removed) == {"a-copy", "a-near", "empty-2"}
    assert counts["docs_out"] == 4 and result.counts["clusters"] == 2
    assert result.cluster_sizes == {3: 1, 2: 1}
    assert removed["a-near"]["detail"] == "cluster of 3"


def test_repeated_ids_are_told_apart_by_position(tmp_path: Path) -> None:
    _, counts, removed = dedup(tmp_path, [[("same", BASE), ("same", BASE), ("same", "Other words entirely " * 10)]])
    assert counts["docs_out"] == 2 and counts["removed.exact_duplicate"] == 1
    assert removed["same"]["duplicate_of"] == "same"


def test_verification_rejects_lsh_candidates_below_threshold(tmp_path: Path) -> None:
    half = BASE.split()
    other = " ".join(half[:90] + [f"x{i}" for i in range(90)])  # Jaccard ~0.33 with BASE
    cfg = DedupConfig(bands=60, rows=1, num_perm=64)  # every shared value is a candidate pair
    result, counts, _ = dedup(tmp_path, [[("a", BASE), ("b", other)]], cfg)
    assert result.counts["candidate_pairs"] == 1 and result.counts["rejected_pairs"] == 1
    assert counts["removed"] == 0
    unverified = DedupConfig(bands=60, rows=1, num_perm=64, verify=False)
    _, counts, _ = dedup(tmp_path / "u", [[("a", BASE), ("b", other)]], unverified)
    assert counts["removed"] == 1


def test_exact_only_and_near_only(tmp_path: Path) -> None:
    near = BASE.replace("w30 ", "changed ")
    shards = [[("a", BASE), ("b", BASE), ("c", near)]]
    _, counts, _ = dedup(tmp_path / "e", shards, DedupConfig(near=False))
    assert counts["removed"] == 1 and counts["removed.exact_duplicate"] == 1
    _, counts, removed = dedup(tmp_path / "n", shards, DedupConfig(exact=False))
    assert counts["removed"] == 2 and {r["reason"] for r in removed.values()} == {"near_duplicate"}


def test_signatures_that_do_not_match_the_documents_are_refused(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs", [[("a", BASE)], [("b", BASE)]])
    write_signatures(DedupConfig(), FS, docs, FS, str(tmp_path / "sig"), shard_index=0, num_shards=2)
    with pytest.raises(ValueError, match="rerun the dedup_signatures stage"):
        find_duplicates(DedupConfig(), FS, str(tmp_path / "sig"), FS, docs)


def test_bands_and_rows_must_fit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exceeds num_perm"):
        DedupConfig(bands=20, rows=10, num_perm=128)
    with pytest.raises(ValueError, match="set both"):
        DedupConfig(bands=20)


def test_compiled_jaccard_equals_the_set_definition() -> None:
    import random

    import numpy as np

    from domainllm.data.dedup.graph import jaccard_pairs
    from domainllm.data.dedup.minhash import shingles
    from domainllm.data.ngrams import ngram_hashes

    rng = random.Random(4)
    words = ["alpha", "Beta,", "gamma", "delta!", "eps", "zeta", "eta", "theta"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(60)]
    hashes, ends, _ = ngram_hashes(texts, [5], whole_max=4)
    parts, start = [], 0
    for end in ends.tolist():
        parts.append(np.unique(hashes[start:end]))
        start = end
    offsets = np.cumsum([0] + [len(p) for p in parts])
    a = np.array([rng.randrange(60) for _ in range(200)])
    b = np.array([rng.randrange(60) for _ in range(200)])
    got = jaccard_pairs(np.concatenate(parts), offsets, a, b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        sx, sy = set(shingles(texts[x], 5)), set(shingles(texts[y], 5))
        assert got[i] == pytest.approx(len(sx & sy) / len(sx | sy))
