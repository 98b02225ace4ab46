"""Stage 2 of dedup: band buckets -> candidate pairs -> connected components -> who goes.

A document is keyed by its place in the corpus, `shard_number << 32 | row`. Documents that
share an exact-text hash, or share a key in any LSH band, are linked to the first document
of that group (a star: k-1 edges for a group of k, never k^2 pairs). Only linked documents
enter the graph, so memory follows the number of duplicates, not the corpus; each band is
read and sorted on its own (16 bytes per document at a time). With `verify`, an LSH link
whose exact Jaccard similarity is below the threshold is dropped before clustering.

In each connected component the first document in corpus order is kept; every other one
is removed as `exact_duplicate` (same text hash as the kept one) or `near_duplicate`, with
`duplicate_of` naming the kept document's id.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from domainllm.data.dedup.graph import connected_components, jaccard_pairs, star_edges
from domainllm.data.dedup.signatures import bands_rows
from domainllm.data.docs import shard_paths
from domainllm.data.ngrams import ngram_hashes
from domainllm.data.shards import write_parquet
from domainllm.progress import Progress
from domainllm.spec.dedup import DedupConfig

log = logging.getLogger(__name__)

DUPLICATES_SCHEMA = pa.schema(
    [
        pa.field("key", pa.int64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),
        pa.field("duplicate_of_key", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("cluster_size", pa.int32(), nullable=False),
    ]
)


@dataclass
class DedupResult:
    duplicates: pa.Table
    counts: dict[str, int] = field(default_factory=dict)
    cluster_sizes: Counter[int] = field(default_factory=Counter)
    bands: int = 0
    rows: int = 0


def _column(fs: fsspec.AbstractFileSystem, paths: list[str], name: str) -> np.ndarray:
    """One column across all signature files; the 16-byte exact hashes as numpy `V16`."""
    parts = []
    for path in paths:
        with fs.open(path, "rb") as fh:
            col = pq.read_table(fh, columns=[name]).column(0).combine_chunks()
        if pa.types.is_fixed_size_binary(col.type):
            width = col.type.byte_width
            parts.append(np.frombuffer(col.buffers()[1], dtype=f"V{width}", count=len(col), offset=col.offset * width))
        else:
            parts.append(col.to_numpy())
    return np.concatenate(parts) if parts else np.empty(0)


def _keys(fs: fsspec.AbstractFileSystem, paths: list[str]) -> np.ndarray:
    parts = []
    for n, path in enumerate(paths):
        with fs.open(path, "rb") as fh:
            rows = pq.read_table(fh, columns=["row"]).column(0).to_numpy().astype(np.int64)
        parts.append((np.int64(n) << 32) | rows)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _shingle_sets(
    cfg: DedupConfig, fs: fsspec.AbstractFileSystem, doc_paths: list[str], keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(flat, offsets): each document's sorted, unique 64-bit shingle hashes, in `keys`
    order (keys sorted). One shard's texts in memory at a time; 8 bytes a shingle kept."""
    parts, counts = [], []
    for shard in np.unique(keys >> 32).tolist():
        sel = keys[(keys >> 32) == shard]
        with fs.open(doc_paths[shard], "rb") as fh:
            texts = pq.read_table(fh, columns=["text"]).column(0).take(pa.array(sel & 0xFFFFFFFF)).to_pylist()
        hashes, ends, _ = ngram_hashes(texts, [cfg.ngram], whole_max=cfg.ngram - 1)
        start = 0
        for end in ends.tolist():
            unique = np.unique(hashes[start:end])
            parts.append(unique)
            counts.append(len(unique))
            start = end
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return (np.concatenate(parts) if parts else np.empty(0, np.uint64)), offsets


def _verify(
    edges: np.ndarray,
    cfg: DedupConfig,
    docs_fs: fsspec.AbstractFileSystem,
    doc_paths: list[str],
) -> np.ndarray:
    """Keep the candidate pairs whose exact Jaccard similarity (over the same shingles the
    signatures hash) reaches the threshold. Compiled: sorted hash arrays, merged pairwise."""
    needed = np.unique(edges)
    flat, offsets = _shingle_sets(cfg, docs_fs, doc_paths, needed)
    a = np.searchsorted(needed, edges[:, 0])
    b = np.searchsorted(needed, edges[:, 1])
    return edges[jaccard_pairs(flat, offsets, a, b) >= cfg.threshold]


def _same_text(exact_hash: np.ndarray, keys: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether documents x[i] and y[i] have the same exact-text hash (keys are sorted)."""
    return exact_hash[np.searchsorted(keys, x)] == exact_hash[np.searchsorted(keys, y)]


def _take(fs: fsspec.AbstractFileSystem, doc_paths: list[str], keys: np.ndarray, column: str) -> dict[int, str]:
    """key -> value of `column` for the given documents, one shard file at a time."""
    out: dict[int, str] = {}
    for shard in np.unique(keys >> 32).tolist():
        sel = keys[(keys >> 32) == shard]
        with fs.open(doc_paths[shard], "rb") as fh:
            values = pq.read_table(fh, columns=[column]).column(0).take(pa.array(sel & 0xFFFFFFFF)).to_pylist()
        out.update(zip(sel.tolist(), values, strict=True))
    return out


EDGES_SCHEMA = pa.schema([pa.field("a", pa.int64(), nullable=False), pa.field("b", pa.int64(), nullable=False)])


def _edge_file(band: int | None) -> str:
    return "edges-exact.parquet" if band is None else f"edges-band-{band:04d}.parquet"


def write_bucket_edges(
    cfg: DedupConfig,
    sig_fs: fsspec.AbstractFileSystem,
    sig_dir: str,
    out_fs: fsspec.AbstractFileSystem,
    out_dir: str,
    *,
    shard_index: int = 0,
    num_shards: int = 1,
) -> dict[str, int]:
    """Stage 2 of dedup (sharded by band): for the bands this worker owns
    (`band % num_shards == shard_index`; worker 0 also does exact-text hashes), group the
    documents by band key and write the star edges of every bucket, one file per band.
    Memory: one band column of the corpus (16 bytes a document) at a time."""
    sig_paths = shard_paths(sig_fs, sig_dir)
    bands, _ = bands_rows(cfg)
    keys = _keys(sig_fs, sig_paths)
    counts: Counter[str] = Counter()
    jobs: list[int | None] = [b for b in range(bands) if b % num_shards == shard_index] if cfg.near else []
    if cfg.exact and shard_index == 0:
        jobs.insert(0, None)
    has_shingles = _column(sig_fs, sig_paths, "shingles") > 0 if cfg.near and len(keys) else None
    progress = Progress(log, "dedup buckets")
    for band in jobs:
        if band is None:
            edges = star_edges(_column(sig_fs, sig_paths, "exact"), keys)
            counts["exact_pairs"] += len(edges)
        else:
            values = _column(sig_fs, sig_paths, f"band_{band}")
            edges = star_edges(values[has_shingles], keys[has_shingles])
            counts["band_pairs"] += len(edges)
        table = pa.table({"a": pa.array(edges[:, 0], pa.int64()), "b": pa.array(edges[:, 1], pa.int64())}, schema=EDGES_SCHEMA)
        write_parquet(out_fs, f"{out_dir}/{_edge_file(band)}", table)
        counts["bands_done"] += band is not None
        progress.update(bands=counts["bands_done"], pairs=counts["band_pairs"])
    return dict(counts)


def _read_edges(fs: fsspec.AbstractFileSystem, folder: str, pattern: str) -> np.ndarray:
    parts = []
    for path in sorted(fs.glob(f"{folder}/{pattern}")):
        with fs.open(path, "rb") as fh:
            t = pq.read_table(fh)
        parts.append(np.stack([t.column("a").to_numpy(), t.column("b").to_numpy()], axis=1))
    return np.concatenate(parts) if parts else np.empty((0, 2), np.int64)


def find_duplicates(
    cfg: DedupConfig,
    sig_fs: fsspec.AbstractFileSystem,
    sig_dir: str,
    docs_fs: fsspec.AbstractFileSystem,
    docs_dir: str,
    edges_dir: str | None = None,
) -> DedupResult:
    """Stage 3 of dedup: which documents of `docs_dir` to remove. Reads the bucket edges
    from `edges_dir` (the sharded bucket stage's output); without it, computes them here."""
    sig_paths = shard_paths(sig_fs, sig_dir)
    doc_paths = shard_paths(docs_fs, docs_dir)
    names = [p.rsplit("/", 1)[-1] for p in sig_paths]
    if names != [p.rsplit("/", 1)[-1] for p in doc_paths]:
        raise ValueError(
            f"signatures in {sig_dir} do not match the document shards in {docs_dir} "
            f"({len(names)} vs {len(doc_paths)} files); rerun the dedup_signatures stage"
        )
    bands, rows = bands_rows(cfg)
    keys = _keys(sig_fs, sig_paths)
    counts: Counter[str] = Counter(docs=len(keys), bands=bands, rows=rows)
    if edges_dir is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="domainllm-edges-") as tmp:
            local = fsspec.filesystem("file")
            counts.update(write_bucket_edges(cfg, sig_fs, sig_dir, local, tmp))
            exact_edges, near = _read_edges(local, tmp, "edges-exact.parquet"), _read_edges(local, tmp, "edges-band-*")
    else:
        exact_edges = _read_edges(sig_fs, edges_dir, "edges-exact.parquet")
        near = _read_edges(sig_fs, edges_dir, "edges-band-*")
    counts.pop("bands_done", None)
    counts.pop("band_pairs", None)
    exact_hash = _column(sig_fs, sig_paths, "exact")
    edge_parts = []
    if cfg.exact:
        counts["exact_pairs"] = len(exact_edges)
        edge_parts.append(exact_edges)
    if cfg.near and len(near):
        near = np.unique(near, axis=0)
        if cfg.exact:  # pairs already linked by exact text need no check
            near = near[~_same_text(exact_hash, keys, near[:, 0], near[:, 1])]
        counts["candidate_pairs"] = len(near)
        if cfg.verify and len(near):
            verified = _verify(near, cfg, docs_fs, doc_paths)
            counts["rejected_pairs"] = len(near) - len(verified)
            near = verified
        edge_parts.append(near)
    elif cfg.near:
        counts["candidate_pairs"] = 0

    edges = np.concatenate(edge_parts) if edge_parts else np.empty((0, 2), np.int64)
    if not len(edges):
        return DedupResult(DUPLICATES_SCHEMA.empty_table(), dict(counts), Counter(), bands, rows)
    nodes, labels = connected_components(edges)
    order = np.lexsort((nodes, labels))  # by component, then corpus order: first = kept
    nodes, labels = nodes[order], labels[order]
    first = np.r_[True, labels[1:] != labels[:-1]]
    head = nodes[np.maximum.accumulate(np.where(first, np.arange(len(nodes)), 0))]
    sizes = np.bincount(labels)
    removed, kept_of = nodes[~first], head[~first]
    ids = _take(docs_fs, doc_paths, np.unique(np.concatenate([removed, kept_of])), "id")
    exact_same = _same_text(exact_hash, keys, removed, kept_of) & cfg.exact
    reasons = np.where(exact_same, "exact_duplicate", "near_duplicate")
    table = pa.table(
        {
            "key": pa.array(removed, pa.int64()),
            "id": pa.array([ids[k] for k in removed.tolist()]),
            "duplicate_of": pa.array([ids[k] for k in kept_of.tolist()]),
            "duplicate_of_key": pa.array(kept_of, pa.int64()),
            "reason": pa.array(reasons.tolist()),
            "cluster_size": pa.array(sizes[labels[~first]].astype(np.int32)),
        },
        schema=DUPLICATES_SCHEMA,
    )
    cluster_sizes = Counter(np.bincount(labels).tolist())
    counts.update(
        clusters=int(first.sum()),
        exact_duplicates=int((reasons == "exact_duplicate").sum()),
        near_duplicates=int((reasons == "near_duplicate").sum()),
    )
    log.info("dedup clusters: docs=%d clusters=%d removed=%d", len(keys), counts["clusters"], len(removed))
    return DedupResult(table.sort_by("key"), dict(counts), cluster_sizes, bands, rows)
