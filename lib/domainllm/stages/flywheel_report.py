"""Stage `flywheel_report` (data_flywheel): the night in numbers (`report.md`, `report.png`,
in MLflow too): counts at every step and why things were dropped, label sources, margins,
the dataset version and whether a training round was triggered."""

from __future__ import annotations

import logging
from typing import ClassVar

from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.flywheel_io import read_rows
from domainllm.stages.label import PAIRS

log = logging.getLogger(__name__)

STEPS = ("harvest", "curate", "sample", "label", "preferences")


class FlywheelReportStage(StageDefaults):
    name: ClassVar[str] = "flywheel_report"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = STEPS

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.flywheel.report import funnel, markdown, plot

        counts = {s: dict(ctx.upstream[s].counts) for s in STEPS}
        prefs = ctx.upstream["preferences"].info
        margins = [p["margin"] for p in read_rows(ctx, "label", PAIRS)]
        triggered = (f"Enough new pairs ({counts['preferences'].get('pending', 0)} >= {ctx.spec.flywheel.min_new_pairs}): "
                     f"a DPO -> evals -> gate -> rollout round is triggered on run {prefs.get('training_run_id') or '(new)'}."
                     if prefs.get("ready") else
                     f"Not enough new pairs to train ({counts['preferences'].get('pending', 0)} < {ctx.spec.flywheel.min_new_pairs}).")  # fmt: skip
        info = {**prefs, "run_id": ctx.run_id, "window": ctx.upstream["harvest"].info.get("window", {}), "triggered_line": triggered,
                "flags": ctx.upstream["harvest"].info.get("flags") or {}, "principals": _principals(ctx)}  # fmt: skip
        text = markdown(counts, info, margins)
        with ctx.out.fs.open(ctx.out.file("report.md"), "w") as fh:
            fh.write(text)
        with ctx.out.fs.open(ctx.out.file("report.png"), "wb") as fh:
            fh.write(plot(counts, margins))
        log.info("flywheel report\n%s", text)
        return StageResult(metrics={f"funnel.{name.replace(' ', '_')}": float(n) for name, n in funnel(counts)},
                           info={"ready": bool(prefs.get("ready"))}, reports=["report.md", "report.png"])  # fmt: skip


def _principals(ctx: StageContext) -> dict:
    """The harvest's per-principal table (none for runs harvested before principals existed)."""
    import json

    from domainllm.artifacts.fs import join
    from domainllm.stages.harvest import PRINCIPALS

    try:
        with ctx.out.fs.open(join(ctx.layout.stage_dir("harvest"), PRINCIPALS)) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}
