"""Stage `compliance` (sharded): remove illegal, sexual or hateful content after PII scrubbing."""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

from domainllm.artifacts.fs import folder_fingerprint
from domainllm.data.compliance import ComplianceFilter
from domainllm.data.compliance.filter import category_lists
from domainllm.spec import Spec
from domainllm.spec.compliance import ComplianceConfig
from domainllm.stages.base import StageContext
from domainllm.stages.doc_steps import DocStepStage


class ComplianceStage(DocStepStage):
    name: ClassVar[str] = "compliance"
    requires: ClassVar[tuple[str, ...]] = ("pii",)
    input_stage: ClassVar[str] = "pii"

    def section(self, spec: Spec) -> ComplianceConfig:
        return spec.data.compliance

    def config(self, spec: Spec) -> dict:
        # a digest of the merged lists (editing a built-in list reruns the stage) rather than
        # the lists themselves, which would flood the MLflow params
        lists = {k: v.model_dump(mode="json") for k, v in category_lists(spec.data.compliance).items()}
        digest = hashlib.sha256(json.dumps(lists, sort_keys=True).encode()).hexdigest()[:16]
        return {**super().config(spec), "lists_digest": digest}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        inputs = {f"list:{name}": folder_fingerprint(bl.path) for name, bl in spec.data.compliance.categories.items() if bl.path}
        if spec.data.compliance.classifier is not None:
            inputs["classifier"] = folder_fingerprint(spec.data.compliance.classifier.path)
        return inputs

    def make_step(self, ctx: StageContext) -> ComplianceFilter:
        return ComplianceFilter(ctx.spec.data.compliance)
