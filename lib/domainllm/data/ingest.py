"""Ingest: every source -> normalized Parquet shards plus a quarantine of rejects."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import fsspec

from domainllm.artifacts.fs import join, redact_url
from domainllm.data.normalize import Normalizer
from domainllm.data.readers import ReadContext, list_files, read_file
from domainllm.data.records import Doc
from domainllm.data.schema import DOCS_SCHEMA, QUARANTINE_SCHEMA
from domainllm.data.shards import ShardWriter
from domainllm.progress import Progress
from domainllm.spec.data import IngestConfig
from domainllm.spec.sources import Source

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"


@dataclass
class IngestReport:
    counts: Counter[str] = field(default_factory=Counter)
    """Totals: records_in, records_out, quarantined, quarantined.<reason>, files, ..."""
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    length_hist: Counter[int] = field(default_factory=Counter)
    """Accepted texts per length bucket: bucket b holds lengths in [2**b, 2**(b+1))."""


def source_fingerprint(source: Source) -> str:
    """Changes when any file of the source is added, removed, resized or touched."""
    digest = hashlib.sha256()
    for f in list_files(source):
        digest.update(f"{f.relpath}\0{f.fingerprint}\n".encode())
    return digest.hexdigest()


def ingest(
    sources: Sequence[Source], cfg: IngestConfig, fs: fsspec.AbstractFileSystem, out_dir: str
) -> IngestReport:
    """Read `sources` in order into `out_dir/part-*.parquet`; rejects go to
    `out_dir/quarantine/part-*.parquet` with their reason."""
    normalizer = Normalizer(cfg.unicode_normalization, cfg.fix_encoding)
    docs = ShardWriter(
        fs, out_dir, DOCS_SCHEMA, max_records=cfg.shard_max_records, max_bytes=cfg.shard_max_bytes,
        compression=cfg.compression, write_empty=True,
    )  # fmt: skip
    rejects = ShardWriter(
        fs, join(out_dir, QUARANTINE_DIR), QUARANTINE_SCHEMA, max_records=cfg.shard_max_records,
        max_bytes=cfg.shard_max_bytes, compression=cfg.compression,
    )  # fmt: skip
    report = IngestReport()
    progress = Progress(log, "ingest")
    bytes_out = 0
    for source in sources:
        ctx = ReadContext(source, cfg, normalizer)
        files = list_files(source)
        log.info("ingest: source %r: %d files under %s", source.name, len(files), redact_url(source.path))
        for f in files:
            for item in read_file(ctx, f):
                if isinstance(item, Doc):
                    row = item.row()
                    nbytes = len(row["text"].encode("utf-8"))
                    docs.add(row, nbytes)
                    bytes_out += nbytes
                    ctx.counts["records_out"] += 1
                    report.length_hist[len(item.text).bit_length() - 1] += 1
                else:
                    rejects.add(item.row(), len(item.raw or b""))
                    ctx.counts["quarantined"] += 1
                    ctx.counts[f"quarantined.{item.reason}"] += 1
                progress.update(records=report.counts["records_out"] + ctx.counts["records_out"], text_bytes=bytes_out)
        report.by_source[source.name] = dict(sorted(ctx.counts.items()))
        report.counts.update(ctx.counts)
        log.info("ingest: source %r done: %s", source.name, _describe(ctx.counts))
    docs.close()
    rejects.close()
    report.counts["shards"] = len(docs.files)
    report.counts["text_bytes"] = bytes_out
    progress.log(records=report.counts["records_out"], text_bytes=bytes_out)
    return report


def _describe(counts: Counter[str]) -> str:
    return ", ".join(f"{k}={v:,}" for k, v in sorted(counts.items()))


__all__ = ["QUARANTINE_DIR", "IngestReport", "ingest", "source_fingerprint"]
