"""Stage `quality`: rule filters and the optional model scorer over the ingested documents."""

from __future__ import annotations

from typing import Any, ClassVar

from domainllm.data.quality import QualityFilter
from domainllm.data.report import write_step_report
from domainllm.data.steps import run_step
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult


class QualityStage:
    name: ClassVar[str] = "quality"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("ingest",)

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        return spec.data.quality.model_dump(mode="json")

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}

    def run(self, ctx: StageContext) -> StageResult:
        fs = ctx.layout.fs
        counts = dict(
            run_step(QualityFilter(ctx.spec.data.quality), fs, ctx.upstream_dir("ingest"), ctx.out.fs, ctx.out.path,
                     compression=ctx.spec.data.ingest.compression)  # fmt: skip
        )
        reports = write_step_report("quality", counts, ctx.out.fs, ctx.out.path)
        return StageResult(
            counts=counts,
            metrics={"removed_fraction": counts.get("removed", 0) / max(counts.get("docs_in", 0), 1)},
            reports=reports,
        )
