"""The dedup quality targets on the labelled benchmark (tests/lib/data/dedup/labelled.py):
recall >= 0.98 on near-exact duplicates at threshold 0.8, <= 0.5% of distinct documents removed.
bench/dedup_quality.py runs the same at scale."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from domainllm.data.dedup import find_duplicates, write_signatures
from domainllm.data.schema import DOCS_SCHEMA
from domainllm.spec.dedup import DedupConfig
from tests.lib.data.dedup.labelled import make_benchmark, score

FS = LocalFileSystem()


def test_recall_and_precision_targets(tmp_path: Path) -> None:
    bench = make_benchmark(4000, 1500, seed=11)
    docs = tmp_path / "docs"
    docs.mkdir()
    rows = [{"id": i, "text": t, "source": "s", "domain": "domain", "lang": "en", "kind": "text", "metadata": "{}"}
            for i, t in zip(bench.ids, bench.texts, strict=True)]  # fmt: skip
    for n in range(3):  # three shards, two signature workers
        pq.write_table(pa.Table.from_pylist(rows[n::3], schema=DOCS_SCHEMA), docs / f"part-{n:05d}.parquet")
    cfg = DedupConfig(threshold=0.8)
    for w in range(2):
        write_signatures(cfg, FS, str(docs), FS, str(tmp_path / "sig"), shard_index=w, num_shards=2)
    result = find_duplicates(cfg, FS, str(tmp_path / "sig"), FS, str(docs))
    s = score(bench, set(result.duplicates.column("id").to_pylist()))
    assert s["recall"] >= 0.98, s
    assert s["distinct_removed_fraction"] <= 0.005, s
