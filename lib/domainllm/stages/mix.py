"""Stage `mix`: the decontaminated documents sampled to the domain/general ratio, ordered
by curriculum, similar documents grouped."""

from __future__ import annotations

from typing import Any, ClassVar

from domainllm.artifacts.fs import folder_fingerprint
from domainllm.data.mix import build_mix
from domainllm.data.mix.report import write_mix_report
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult


class MixStage:
    name: ClassVar[str] = "mix"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("decontaminate",)

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        return {"mix": spec.data.mix.model_dump(mode="json"), "tasks": {s.name: s.task for s in spec.sources},
                "shard_max_records": spec.data.ingest.shard_max_records}  # fmt: skip

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        model = spec.data.mix.curriculum.model
        return {"curriculum_model": folder_fingerprint(model)} if model else {}

    def run(self, ctx: StageContext) -> StageResult:
        spec = ctx.spec
        result = build_mix(spec.data.mix, {s.name: s.task for s in spec.sources}, ctx.layout.fs,
                           ctx.upstream_dir("decontaminate"), ctx.out.fs, ctx.out.path,
                           shard_max_records=spec.data.ingest.shard_max_records,
                           compression=spec.data.ingest.compression)  # fmt: skip
        reports = write_mix_report(result, ctx.out.fs, ctx.out.path)
        counts = {**result.counts, **{f"chars.{k}": v for k, v in result.chars_by_source.items()}}
        total = sum(result.chars_by_source.values()) or 1
        domain = sum(result.chars_by_source.get(s.name, 0) for s in result.sizes if s.domain == "domain")
        return StageResult(counts=counts, metrics={"domain_fraction": domain / total},
                           info={"repeat": result.plan.repeat, "notes": result.notes}, reports=reports)  # fmt: skip
