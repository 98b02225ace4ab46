"""Build the mix: sample each source by its repeat factor, order by curriculum, group
similar documents, and write the documents in that order.

Memory: one scan keeps a few numbers per document (and its grouping features), never the
texts; writing reads input shards back one at a time per output chunk.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from domainllm.data.docs import shard_paths
from domainllm.data.mix.curriculum import PerplexityScorer, costs
from domainllm.data.mix.grouping import (
    embedding_chain,
    embeddings,
    group_order,
    grouping_keys,
    minhash_groups,
)
from domainllm.data.mix.plan import MixPlan, SourceSize, plan_mix
from domainllm.data.schema import DOCS_SCHEMA
from domainllm.data.shards import ShardWriter
from domainllm.progress import Progress
from domainllm.spec.mix import MixConfig

log = logging.getLogger(__name__)

MIX_SCHEMA = (
    DOCS_SCHEMA.append(pa.field("task", pa.string()))
    .append(pa.field("copy", pa.int16(), nullable=False))
    .append(pa.field("curriculum_stage", pa.int16(), nullable=False))
    .append(pa.field("group", pa.int64(), nullable=False))
)


@dataclass
class Scan:
    shard: np.ndarray
    row: np.ndarray
    source: np.ndarray
    """Index into `sources`."""
    chars: np.ndarray
    cost: np.ndarray
    u: np.ndarray
    """A uniform draw per document, fixed by its id and the seed (which partial copies go in)."""
    features: np.ndarray | tuple[np.ndarray, np.ndarray] | None
    sources: list[str]
    domain_of: dict[str, str]
    held: np.ndarray
    """True for documents held out of the mix (`heldout_fraction`)."""


@dataclass
class MixResult:
    plan: MixPlan
    sizes: list[SourceSize]
    counts: Counter[str] = field(default_factory=Counter)
    chars_by_source: Counter[str] = field(default_factory=Counter)
    stage_sizes: list[int] = field(default_factory=list)
    group_sizes: Counter[int] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


_HELDOUT_SALT = 0x5EED
HELDOUT_DIR = "heldout"


def _uniform(doc_id: str, seed: int) -> float:
    return xxhash.xxh64_intdigest(f"{seed}\0{doc_id}".encode()) / 2.0**64


def is_heldout(doc_id: str, cfg: MixConfig) -> bool:
    """Whether a document is held out of the mix: by its id and the seed alone, so every mix
    ratio (and the demo base model's pretraining, which skips them too) agrees."""
    return _uniform(doc_id, cfg.seed + _HELDOUT_SALT) < cfg.heldout_fraction


def _record_task(metadata: str) -> str | None:
    """A record's own `task` field (ingest keeps extra fields under `metadata.fields`)."""
    if '"task"' not in metadata:
        return None
    meta = json.loads(metadata)
    task = (meta.get("fields") or {}).get("task", meta.get("task"))
    return task if isinstance(task, str) else None


def scan(fs: fsspec.AbstractFileSystem, in_dir: str, cfg: MixConfig) -> Scan:
    cols = {k: [] for k in ("shard", "row", "source", "chars", "cost", "u", "held")}
    feats: list = []
    sources: list[str] = []
    domain_of: dict[str, str] = {}
    progress = Progress(log, "mix scan")
    cur = cfg.curriculum
    scorer = PerplexityScorer(cur.model, cur.max_tokens) if cur.order_by == "perplexity" and cur.model else None
    for n, path in enumerate(shard_paths(fs, in_dir)):
        with fs.open(path, "rb") as fh:
            table = pq.read_table(fh, columns=["id", "text", "source", "domain", "kind"])
        texts = table.column("text").to_pylist()
        for i, (doc_id, text, src, dom) in enumerate(zip(table.column("id").to_pylist(), texts,
                                                         table.column("source").to_pylist(),
                                                         table.column("domain").to_pylist(), strict=True)):  # fmt: skip
            if src not in domain_of:
                domain_of[src] = dom
                sources.append(src)
            cols["shard"].append(n)
            cols["row"].append(i)
            cols["source"].append(sources.index(src))
            cols["chars"].append(len(text))
            cols["u"].append(_uniform(doc_id, cfg.seed))
            cols["held"].append(is_heldout(doc_id, cfg))
        cols["cost"].extend(costs(texts, table.column("kind").to_pylist(), cur.order_by, scorer))
        if cfg.grouping.method == "minhash":
            feats.append(grouping_keys(texts, cfg.grouping.similarity))
        elif cfg.grouping.method == "embeddings":
            feats.append(embeddings(texts, cfg.grouping.embedding_model))
        progress.update(docs=len(cols["row"]))
    features = None
    if feats and cfg.grouping.method == "minhash":
        features = (np.concatenate([f[0] for f in feats]), np.concatenate([f[1] for f in feats]))
    elif feats:
        features = np.concatenate(feats)
    return Scan(np.asarray(cols["shard"], np.int64), np.asarray(cols["row"], np.int64),
                np.asarray(cols["source"], np.int32), np.asarray(cols["chars"], np.int64),
                np.asarray(cols["cost"], np.float64), np.asarray(cols["u"], np.float64), features, sources,
                domain_of, np.asarray(cols["held"], bool))  # fmt: skip


def _group(idx: np.ndarray, s: Scan, cfg: MixConfig) -> tuple[np.ndarray, np.ndarray]:
    """(positions reordered within `idx`, group label per position)."""
    if cfg.grouping.method == "minhash" and s.features is not None:
        keys, has = s.features
        labels = minhash_groups(keys[idx], has[idx])
        order = group_order(labels)
        return order, idx[labels[order]]
    if cfg.grouping.method == "embeddings" and s.features is not None:
        order = embedding_chain(s.features[idx], cfg.grouping.window)
        return order, np.full(len(order), idx[order[0]] if len(order) else 0)
    return np.arange(len(idx)), idx.copy()


def sample_copies(s: Scan, plan: MixPlan) -> np.ndarray:
    """Copies of each document: floor(repeat), plus one more for documents picked, in the
    order of each one's fixed random draw, while they bring the source closer to the
    fractional part of its characters (a document is taken if at most half of it overshoots).
    Proportions come out right to within about one document, not just in expectation,
    even for sources of a few large documents."""
    copies = np.zeros(len(s.row), dtype=np.int64)
    for i, name in enumerate(s.sources):
        members = np.nonzero((s.source == i) & ~s.held)[0]
        r = plan.repeat[name]
        copies[members] = int(np.floor(r))
        want = (r - np.floor(r)) * s.chars[members].sum()
        have = 0
        for d in members[np.argsort(s.u[members], kind="stable")].tolist():
            if have >= want:
                break
            if have + s.chars[d] / 2 <= want:
                copies[d] += 1
                have += s.chars[d]
    return copies


def order_mix(s: Scan, plan: MixPlan, cfg: MixConfig) -> tuple[np.ndarray, ...]:
    """(doc, copy, stage, group) arrays in output order: copy 0 of every sampled document in
    curriculum order, then copy 1 of those sampled twice, and so on."""
    copies = sample_copies(s, plan)
    out_doc, out_copy, out_stage, out_group = [], [], [], []
    rng = np.random.default_rng(cfg.seed)
    for p in range(int(copies.max()) if len(copies) else 0):
        sel = np.nonzero(copies > p)[0]
        if cfg.curriculum.order_by == "none":
            sel = rng.permutation(sel)
        else:
            sel = sel[np.argsort(s.cost[sel], kind="stable")]
        for stage, bucket in enumerate(np.array_split(sel, min(cfg.curriculum.buckets, max(len(sel), 1)))):
            if not len(bucket):
                continue
            order, groups = _group(bucket, s, cfg)
            out_doc.append(bucket[order])
            out_group.append(groups)
            out_copy.append(np.full(len(bucket), p))
            out_stage.append(np.full(len(bucket), stage))
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.empty(0, dt)  # noqa: E731
    return cat(out_doc, np.int64), cat(out_copy, np.int16), cat(out_stage, np.int16), cat(out_group, np.int64)


def _write_heldout(s: Scan, in_fs, paths: list[str], out_fs, out_dir: str, result: MixResult, compression: str) -> None:
    """The held-out documents, in input order, to `heldout/` (docs schema, with `domain`)."""
    writer = ShardWriter(out_fs, f"{out_dir}/{HELDOUT_DIR}", DOCS_SCHEMA, max_records=1 << 62, max_bytes=1 << 62,
                         compression=compression, write_empty=True)  # fmt: skip
    held = np.nonzero(s.held)[0]
    for shard in np.unique(s.shard[held]).tolist():
        members = held[s.shard[held] == shard]
        with in_fs.open(paths[shard], "rb") as fh:
            table = pq.read_table(fh, columns=DOCS_SCHEMA.names).take(pa.array(s.row[members]))
        for row in table.to_pylist():
            writer.add(row, len(row["text"]))
            result.counts[f"heldout.{row['domain']}"] += 1
    writer.close()


def build_mix(
    cfg: MixConfig,
    task_of: dict[str, str | None],
    in_fs: fsspec.AbstractFileSystem,
    in_dir: str,
    out_fs: fsspec.AbstractFileSystem,
    out_dir: str,
    *,
    shard_max_records: int = 50_000,
    compression: str = "zstd",
) -> MixResult:
    s = scan(in_fs, in_dir, cfg)
    sizes = []
    for i, name in enumerate(s.sources):
        mask = (s.source == i) & ~s.held
        sizes.append(SourceSize(name, s.domain_of[name], int(s.chars[mask].sum()), int(mask.sum())))
    plan = plan_mix(sizes, cfg)
    doc, copy, stage, group = order_mix(s, plan, cfg)
    result = MixResult(plan, sizes)
    result.counts.update(docs_in=len(s.row), docs_out=len(doc), docs_heldout=int(s.held.sum()))
    result.stage_sizes = np.bincount(stage, minlength=int(stage.max()) + 1 if len(stage) else 0).tolist()
    if len(group):
        _, members = np.unique(np.stack([group, copy.astype(np.int64)], axis=1), axis=0, return_counts=True)
        sizes_, n_groups = np.unique(members, return_counts=True)
        result.group_sizes = Counter(dict(zip(sizes_.tolist(), n_groups.tolist(), strict=True)))

    writer = ShardWriter(out_fs, out_dir, MIX_SCHEMA, max_records=shard_max_records, max_bytes=1 << 62,
                         compression=compression, write_empty=True)  # fmt: skip
    paths = shard_paths(in_fs, in_dir)
    progress = Progress(log, "mix write")
    for lo in range(0, len(doc), shard_max_records):
        chunk = doc[lo : lo + shard_max_records]
        rows: dict[int, dict] = {}
        for shard in np.unique(s.shard[chunk]).tolist():
            members = chunk[s.shard[chunk] == shard]
            with in_fs.open(paths[shard], "rb") as fh:
                table = pq.read_table(fh).take(pa.array(s.row[members]))
            rows.update(zip(members.tolist(), table.to_pylist(), strict=True))
        for j, d in enumerate(chunk.tolist()):
            row = dict(rows[d])
            row.update(task=_record_task(row["metadata"]) or task_of.get(row["source"]),
                       copy=int(copy[lo + j]), curriculum_stage=int(stage[lo + j]), group=int(group[lo + j]))  # fmt: skip
            writer.add(row, len(row["text"]))
            result.chars_by_source[row["source"]] += len(row["text"])
        progress.update(docs=lo + len(chunk))
    writer.close()
    _write_heldout(s, in_fs, paths, out_fs, out_dir, result, compression)
    total = sum(result.chars_by_source.values())
    domain = sum(result.chars_by_source.get(z.name, 0) for z in sizes if z.domain == "domain")
    if total and abs(domain / total - cfg.domain_fraction) > 0.02:
        result.notes.append(f"domain share is {domain / total:.1%}, not {cfg.domain_fraction:.0%}: documents are "
                            "sampled whole and some sources hold few, large ones")  # fmt: skip
    result.notes[:0] = plan.notes
    return result
