"""Sharded stages that apply a per-document step (`DocStep`) to an upstream stage's shards:
each shard task takes every `data.shards`-th input shard; the collect step writes the report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from domainllm.artifacts import Manifest
from domainllm.data.report import write_step_report
from domainllm.data.steps import run_step
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.sharding import gather_shards


class DocStepStage(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]]
    sharded: ClassVar[bool] = True
    input_stage: ClassVar[str]

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    @abstractmethod
    def section(self, spec: Spec) -> Any:
        """The spec section that configures the step."""

    @abstractmethod
    def make_step(self, ctx: StageContext) -> Any:
        """The `DocStep` one shard task applies."""

    def config(self, spec: Spec) -> dict[str, Any]:
        return {self.name: self.section(spec).model_dump(mode="json"), "shards": spec.data.shards}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}

    def num_shards(self, spec: Spec) -> int:
        return spec.data.shards

    def step_counts(self, step: Any) -> dict[str, int]:
        """Extra counts the step gathered, summed over shards (e.g. PII findings by type)."""
        return {}

    def step_info(self, step: Any) -> dict[str, Any]:
        """Facts about the step's setup, the same in every shard (e.g. eval set sizes)."""
        return {}

    def run_shard(self, ctx: StageContext, shard: int, num_shards: int) -> StageResult:
        step = self.make_step(ctx)
        counts = run_step(step, ctx.layout.fs, ctx.upstream_dir(self.input_stage), ctx.out.fs, ctx.out.path,
                          shard_index=shard, num_shards=num_shards, compression=ctx.spec.data.ingest.compression)  # fmt: skip
        return StageResult(counts={**counts, **self.step_counts(step)}, info=self.step_info(step))

    def collect(self, ctx: StageContext, shards: list[Manifest]) -> StageResult:
        counts = dict(gather_shards(ctx, self.name, shards))
        info = {k: v for k, v in shards[0].info.items() if k not in ("shard", "num_shards")} if shards else {}
        reports = self.write_report(ctx, counts, info)
        return StageResult(
            counts=counts,
            metrics={"removed_fraction": counts.get("removed", 0) / max(counts.get("docs_in", 0), 1)},
            info=info,
            reports=reports,
        )

    def write_report(self, ctx: StageContext, counts: dict[str, int], info: dict[str, Any]) -> list[str]:
        return write_step_report(self.name, counts, ctx.out.fs, ctx.out.path)
