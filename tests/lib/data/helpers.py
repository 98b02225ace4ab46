from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from domainllm.data.ingest import IngestReport, ingest
from domainllm.spec.data import IngestConfig
from domainllm.spec.sources import Source


def make_source(path: Path, **kw) -> Source:
    fields = {"name": "src", "path": str(path), "domain": "domain", **kw}
    return Source.model_validate(fields, context={"base_dir": path.parent})


def run_ingest(path: Path, out: Path, cfg: IngestConfig | None = None, **source_kw) -> tuple[IngestReport, list[dict], list[dict]]:
    report = ingest([make_source(path, **source_kw)], cfg or IngestConfig(), LocalFileSystem(), str(out))
    docs = [r for f in sorted(out.glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    rejects = [r for f in sorted((out / "quarantine").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    return report, docs, rejects
