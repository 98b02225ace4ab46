"""Stage `quality` (sharded): rule filters and the optional model scorer over the ingested documents."""

from __future__ import annotations

from typing import Any, ClassVar

from domainllm.data.quality import QualityFilter
from domainllm.data.report import write_languages_plot, write_step_report
from domainllm.spec import Spec
from domainllm.spec.quality import QualityConfig
from domainllm.stages.base import StageContext
from domainllm.stages.doc_steps import DocStepStage


class QualityStage(DocStepStage):
    name: ClassVar[str] = "quality"
    requires: ClassVar[tuple[str, ...]] = ("ingest",)
    input_stage: ClassVar[str] = "ingest"

    def section(self, spec: Spec) -> QualityConfig:
        return spec.data.quality

    def make_step(self, ctx: StageContext) -> QualityFilter:
        return QualityFilter(ctx.spec.data.quality)

    def step_counts(self, step: Any) -> dict[str, int]:
        return {f"lang.{lang}": n for lang, n in step.languages.items()}

    def write_report(self, ctx: StageContext, counts: dict[str, int], info: dict[str, Any]) -> list[str]:
        reports = write_step_report(self.name, counts, ctx.out.fs, ctx.out.path)
        return reports + write_languages_plot(counts, ctx.out.fs, ctx.out.path)
