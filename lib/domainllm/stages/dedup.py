"""Stages `dedup_signatures` (sharded by document shard), `dedup_buckets` (sharded by LSH
band), `dedup_clusters` and `dedup` (sharded): exact and MinHash-LSH near-duplicate removal
over the quality-filtered documents."""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow.parquet as pq

from domainllm.artifacts import Manifest
from domainllm.artifacts.fs import join
from domainllm.data.dedup import DuplicateFilter, find_duplicates, write_signatures
from domainllm.data.dedup.clusters import write_bucket_edges
from domainllm.data.dedup.report import write_dedup_report
from domainllm.spec import Spec
from domainllm.spec.dedup import DedupConfig
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.doc_steps import DocStepStage
from domainllm.stages.sharding import gather_shards

DUPLICATES_FILE = "duplicates.parquet"


class _DedupStage:
    version: ClassVar[str] = "1"

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires  # type: ignore[attr-defined]

    def config(self, spec: Spec) -> dict[str, Any]:
        return {"dedup": spec.data.dedup.model_dump(mode="json"), "shards": spec.data.shards}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}

    def num_shards(self, spec: Spec) -> int:
        return spec.data.shards


class DedupSignaturesStage(_DedupStage):
    name: ClassVar[str] = "dedup_signatures"
    requires: ClassVar[tuple[str, ...]] = ("quality",)
    sharded: ClassVar[bool] = True

    def run_shard(self, ctx: StageContext, shard: int, num_shards: int) -> StageResult:
        counts = write_signatures(ctx.spec.data.dedup, ctx.layout.fs, ctx.upstream_dir("quality"), ctx.out.fs,
                                  ctx.out.path, shard_index=shard, num_shards=num_shards)  # fmt: skip
        return StageResult(counts=counts)

    def collect(self, ctx: StageContext, shards: list[Manifest]) -> StageResult:
        return StageResult(counts=dict(gather_shards(ctx, self.name, shards)))


class DedupBucketsStage(_DedupStage):
    """LSH band buckets -> candidate pairs, sharded by band (shard i takes bands b with
    b % shards == i; shard 0 also the exact-text hashes)."""

    name: ClassVar[str] = "dedup_buckets"
    requires: ClassVar[tuple[str, ...]] = ("dedup_signatures",)
    sharded: ClassVar[bool] = True

    def run_shard(self, ctx: StageContext, shard: int, num_shards: int) -> StageResult:
        counts = write_bucket_edges(ctx.spec.data.dedup, ctx.layout.fs, ctx.upstream_dir("dedup_signatures"),
                                    ctx.out.fs, ctx.out.path, shard_index=shard, num_shards=num_shards)  # fmt: skip
        return StageResult(counts=counts)

    def collect(self, ctx: StageContext, shards: list[Manifest]) -> StageResult:
        return StageResult(counts=dict(gather_shards(ctx, self.name, shards)))


class DedupClustersStage(_DedupStage):
    """Candidate pairs -> verified -> connected components -> `duplicates.parquet`."""

    name: ClassVar[str] = "dedup_clusters"
    requires: ClassVar[tuple[str, ...]] = ("quality", "dedup_signatures", "dedup_buckets")

    def run(self, ctx: StageContext) -> StageResult:
        fs = ctx.layout.fs
        result = find_duplicates(ctx.spec.data.dedup, fs, ctx.upstream_dir("dedup_signatures"), fs,
                                 ctx.upstream_dir("quality"), edges_dir=ctx.upstream_dir("dedup_buckets"))  # fmt: skip
        with ctx.out.fs.open(ctx.out.file(DUPLICATES_FILE), "wb") as fh:
            pq.write_table(result.duplicates, fh, compression="zstd")
        reports = write_dedup_report(result, ctx.out.fs, ctx.out.path)
        docs = max(result.counts.get("docs", 0), 1)
        return StageResult(
            counts=result.counts,
            metrics={"duplicate_fraction": result.duplicates.num_rows / docs},
            info={"bands": result.bands, "rows": result.rows},
            reports=reports,
        )


class DedupStage(DocStepStage):
    name: ClassVar[str] = "dedup"
    requires: ClassVar[tuple[str, ...]] = ("quality", "dedup_clusters")
    input_stage: ClassVar[str] = "quality"

    def section(self, spec: Spec) -> DedupConfig:
        return spec.data.dedup

    def make_step(self, ctx: StageContext) -> DuplicateFilter:
        with ctx.layout.fs.open(join(ctx.upstream_dir("dedup_clusters"), DUPLICATES_FILE), "rb") as fh:
            return DuplicateFilter(pq.read_table(fh))
