"""Stage `decontaminate` (sharded): drop documents that overlap the evaluation sets."""

from __future__ import annotations

from typing import Any, ClassVar

from domainllm.artifacts.fs import folder_fingerprint
from domainllm.data.decontam import Decontaminator
from domainllm.spec import Spec
from domainllm.spec.decontam import DecontamConfig
from domainllm.stages.base import StageContext
from domainllm.stages.doc_steps import DocStepStage


class DecontaminateStage(DocStepStage):
    name: ClassVar[str] = "decontaminate"
    requires: ClassVar[tuple[str, ...]] = ("compliance",)
    input_stage: ClassVar[str] = "compliance"

    def section(self, spec: Spec) -> DecontamConfig:
        return spec.data.decontamination

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {f"eval:{es.name}": folder_fingerprint(es.path) for es in spec.data.decontamination.eval_sets}

    def make_step(self, ctx: StageContext) -> Decontaminator:
        return Decontaminator(ctx.spec.data.decontamination)

    def step_counts(self, step: Any) -> dict[str, int]:
        return step.counts()

    def step_info(self, step: Any) -> dict[str, Any]:
        return {"eval_sets": step.index.counts}
