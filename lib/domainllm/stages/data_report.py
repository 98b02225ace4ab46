"""Stage `data_report`: one HTML page with every data stage's numbers and plots."""

from __future__ import annotations

import json
from typing import ClassVar

from domainllm.artifacts.fs import join
from domainllm.data.html_report import StageView, render
from domainllm.stages.base import StageContext, StageDefaults, StageResult

REPORT = "data_report.html"


class DataReportStage(StageDefaults):
    name: ClassVar[str] = "data_report"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("ingest", "quality", "dedup_clusters", "dedup", "pii", "compliance",
                                           "decontaminate", "mix", "pack")  # fmt: skip

    def run(self, ctx: StageContext) -> StageResult:
        views = {n: StageView(n, m, ctx.upstream_dir(n)) for n, m in ctx.upstream.items()}
        page, summary = render(ctx.run_id, views, ctx.layout.fs)
        with ctx.out.fs.open(join(ctx.out.path, REPORT), "wb") as fh:
            fh.write(page.encode())
        with ctx.out.fs.open(join(ctx.out.path, "summary.json"), "wb") as fh:
            fh.write(json.dumps(summary, indent=2).encode() + b"\n")
        report_url = ctx.layout.url(join(ctx.layout.stage_dir(self.name), REPORT))
        return StageResult(info={"report_html": report_url}, reports=[REPORT, "summary.json"])
