"""Stage `label` (data_flywheel): scores every candidate (user feedback first, else the judge
when one is configured, else rule checks) and keeps (prompt, chosen, rejected) pairs whose
scores differ by at least `flywheel.label.min_margin`."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.flywheel_io import read_rows, write_rows
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)

PAIRS = "pairs.jsonl"


def judge_config(spec: Spec):
    """The judge the flywheel labels with, or None (rules then)."""
    cfg = spec.flywheel.label
    if not cfg.use_judge:
        return None
    judge = cfg.judge or spec.evals.judge
    return judge if judge.enabled else None


class LabelStage(StageDefaults):
    name: ClassVar[str] = "label"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("sample",)

    def config(self, spec: Spec) -> dict[str, Any]:
        judge = judge_config(spec)
        return {"label": spec.flywheel.label.model_dump(mode="json", exclude={"judge"}),
                "judge": judge.model_dump(mode="json") if judge else None}  # fmt: skip

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.evals.endpoint import EndpointError
        from domainllm.evals.sandbox import SandboxUnavailable, isolation_problem
        from domainllm.flywheel.label import label
        from domainllm.stages.evaluate import judge_for

        rows = read_rows(ctx, "sample")
        judge_cfg = judge_config(ctx.spec)
        where = "flywheel.label.judge" if ctx.spec.flywheel.label.judge else "evals.judge"
        judge = judge_for(ctx.spec, judge_cfg, where) if judge_cfg is not None and rows else None
        try:
            pairs, counts = label(rows, ctx.spec.flywheel.label, judge)
        except (EndpointError, SandboxUnavailable) as exc:
            raise StageError(f"label: {exc}") from None
        write_rows(ctx, pairs, PAIRS)
        margins = [p["margin"] for p in pairs]
        log.info("label: %d pairs from %d prompts (judge: %s); %s", len(pairs), len(rows), "yes" if judge else "no, rules",
                 ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))  # fmt: skip
        return StageResult(counts=dict(counts),
                           metrics={"margin.mean": sum(margins) / len(margins)} if margins else {},
                           info={"judge": judge is not None, "code_checks": "isolated" if isolation_problem() is None else
                                 "unisolated (flywheel.label.allow_unisolated)"})  # fmt: skip
