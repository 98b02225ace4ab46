"""Sharded stages: N shard tasks (the DAG maps one per shard) write their part of the
output under `<run>/.shards/<stage>/`, each with its own manifest; the collect step
publishes the parts together as the stage's output, with one manifest and one MLflow run."""

from __future__ import annotations

import os
from collections import Counter
from typing import ClassVar, Protocol

from domainllm.artifacts import Manifest
from domainllm.artifacts.fs import is_local, join
from domainllm.spec import Spec
from domainllm.stages.base import Stage, StageContext, StageResult


class ShardedStage(Stage, Protocol):
    sharded: ClassVar[bool]

    def num_shards(self, spec: Spec) -> int: ...

    def run_shard(self, ctx: StageContext, shard: int, num_shards: int) -> StageResult:
        """Write this shard's part of the output into `ctx.out`."""
        ...

    def collect(self, ctx: StageContext, shards: list[Manifest]) -> StageResult:
        """Assemble the stage output in `ctx.out` from the published shards."""
        ...


def gather_shards(ctx: StageContext, stage: str, shards: list[Manifest]) -> Counter[str]:
    """Place every shard's output files into `ctx.out` (hard links locally, copies on an
    object store, so the shards stay intact until the stage is published) and return the
    summed counts. Two shards writing the same relative path is a bug in the stage."""
    fs = ctx.layout.fs
    counts: Counter[str] = Counter()
    seen: dict[str, int] = {}
    for m in shards:
        shard, num = m.info["shard"], m.info["num_shards"]
        src_dir = ctx.layout.shard_dir(stage, shard, num)
        for out in m.outputs:
            if out.path in seen:
                raise RuntimeError(f"stage {stage}: shards {seen[out.path]} and {shard} both wrote {out.path}")
            seen[out.path] = shard
            src, dst = join(src_dir, out.path), ctx.out.file(out.path)
            if is_local(fs):
                os.link(src, dst)
            else:
                fs.copy(src, dst)
        counts.update(m.counts)
    return counts
