"""Stage `pii` (sharded): PII in the deduplicated documents becomes typed placeholders."""

from __future__ import annotations

from typing import Any, ClassVar

from domainllm.artifacts.fs import folder_fingerprint
from domainllm.data.pii.report import write_pii_report
from domainllm.spec import Spec
from domainllm.spec.pii import PiiConfig
from domainllm.stages.base import StageContext
from domainllm.stages.doc_steps import DocStepStage


class PiiStage(DocStepStage):
    name: ClassVar[str] = "pii"
    requires: ClassVar[tuple[str, ...]] = ("dedup",)
    input_stage: ClassVar[str] = "dedup"

    def section(self, spec: Spec) -> PiiConfig:
        return spec.data.pii

    def make_step(self, ctx: StageContext) -> Any:
        from domainllm.data.pii.step import PiiStep  # presidio imports transformers: shard tasks only

        return PiiStep(ctx.spec.data.pii)

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        if spec.data.pii.ner_model is None:
            return {}
        return {"ner_model": folder_fingerprint(spec.data.pii.ner_model)}

    def step_counts(self, step: Any) -> dict[str, int]:
        return step.counts()

    def step_info(self, step: Any) -> dict[str, Any]:
        return {"names_detected": step.scrubber.detects_names}

    def write_report(self, ctx: StageContext, counts: dict[str, int], info: dict[str, Any]) -> list[str]:
        return write_pii_report(counts, ctx.spec.data.pii, ctx.out.fs, ctx.out.path, bool(info.get("names_detected")))
