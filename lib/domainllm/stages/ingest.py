"""Stage `ingest`: the spec's sources -> normalized Parquet + quarantine + report."""

from __future__ import annotations

from typing import Any, ClassVar

from domainllm.data.ingest import ingest, source_fingerprint
from domainllm.data.report import write_ingest_report
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult


class IngestStage:
    name: ClassVar[str] = "ingest"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ()

    def required(self, spec: Spec) -> tuple[str, ...]:
        return ()

    def config(self, spec: Spec) -> dict[str, Any]:
        return {
            "ingest": spec.data.ingest.model_dump(mode="json"),
            "sources": {s.name: s.model_dump(mode="json", exclude={"name"}) for s in spec.sources},
        }

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {f"source:{s.name}": source_fingerprint(s) for s in spec.sources}

    def run(self, ctx: StageContext) -> StageResult:
        report = ingest(ctx.spec.sources, ctx.spec.data.ingest, ctx.out.fs, ctx.out.path)
        reports = write_ingest_report(report, ctx.out.fs, ctx.out.path)
        counts = dict(report.counts)
        return StageResult(
            counts=counts,
            metrics={"quarantine_rate": counts.get("quarantined", 0) / max(counts.get("records_in", 0), 1)},
            info={"by_source": report.by_source},
            reports=reports,
        )
