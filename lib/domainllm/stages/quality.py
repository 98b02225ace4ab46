"""Stage `quality` (sharded): rule filters and the optional model scorer over the ingested documents."""

from __future__ import annotations

from typing import ClassVar

from domainllm.data.quality import QualityFilter
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
