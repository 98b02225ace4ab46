"""Stage 1 of dedup (sharded): per input shard, an exact-text hash and the LSH band keys
of every document's MinHash signature, as a Parquet file named like the input shard.

Only these columns travel to the clustering step: 16 + 4 + 8 x bands bytes per document,
never the text, so clustering reads one band at a time across the whole corpus.
"""

from __future__ import annotations

import logging

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from domainllm.artifacts.fs import join
from domainllm.data.dedup.minhash import band_hashes, band_params, permutations, signatures
from domainllm.data.docs import shard_paths
from domainllm.data.shards import write_parquet
from domainllm.progress import Progress
from domainllm.spec.dedup import DedupConfig

log = logging.getLogger(__name__)

_BATCH_ROWS = 4096


def bands_rows(cfg: DedupConfig) -> tuple[int, int]:
    if cfg.bands is not None and cfg.rows is not None:
        return cfg.bands, cfg.rows
    return band_params(cfg.threshold, cfg.num_perm, cfg.false_positive_weight, cfg.false_negative_weight)


def signature_schema(bands: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("row", pa.int32(), nullable=False),
            pa.field("exact", pa.binary(16), nullable=False),
            pa.field("shingles", pa.int32(), nullable=False),
            *(pa.field(f"band_{i}", pa.uint64(), nullable=False) for i in range(bands)),
        ]
    )


def exact_key(text: str) -> bytes:
    """Exact-duplicate key: the text with surrounding whitespace stripped, hashed (128 bits)."""
    return xxhash.xxh3_128_digest(text.strip().encode("utf-8", "surrogatepass"))


def write_signatures(
    cfg: DedupConfig,
    in_fs: fsspec.AbstractFileSystem,
    in_dir: str,
    out_fs: fsspec.AbstractFileSystem,
    out_dir: str,
    *,
    shard_index: int = 0,
    num_shards: int = 1,
) -> dict[str, int]:
    """Signatures of the input shards this worker owns (`n % num_shards == shard_index`)."""
    bands, rows = bands_rows(cfg)
    a, b = permutations(cfg.num_perm, cfg.seed)
    schema = signature_schema(bands)
    counts = {"docs": 0, "shards": 0, "no_shingles": 0, "text_bytes": 0}
    progress = Progress(log, "dedup signatures")
    for n, path in enumerate(shard_paths(in_fs, in_dir)):
        if n % num_shards != shard_index:
            continue
        tables = []
        row0 = 0
        with in_fs.open(path, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=_BATCH_ROWS, columns=["text"]):
                texts = batch.column(0).to_pylist()
                sigs, shingle_counts = signatures(texts, a, b, cfg.ngram)
                keys = band_hashes(sigs, bands, rows)
                columns = {
                    "row": pa.array(np.arange(row0, row0 + len(texts), dtype=np.int32)),
                    "exact": pa.array([exact_key(t) for t in texts], pa.binary(16)),
                    "shingles": pa.array(shingle_counts.astype(np.int32)),
                    **{f"band_{i}": pa.array(keys[:, i]) for i in range(bands)},
                }
                tables.append(pa.table(columns, schema=schema))
                row0 += len(texts)
                counts["docs"] += len(texts)
                counts["no_shingles"] += int((shingle_counts == 0).sum())
                counts["text_bytes"] += sum(len(t) for t in texts)
                progress.update(docs=counts["docs"], text_bytes=counts["text_bytes"])
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        write_parquet(out_fs, join(out_dir, path.rsplit("/", 1)[-1]), table, row_group_size=100_000)
        counts["shards"] += 1
    progress.log(docs=counts["docs"], text_bytes=counts["text_bytes"])
    return counts
