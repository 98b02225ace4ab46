"""Stage `sample` (data_flywheel): candidate answers for every curated prompt from several
model versions (`flywheel.sampling`), plus the answer the user was served."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.flywheel_io import read_rows, write_rows
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)


class SampleStage(StageDefaults):
    name: ClassVar[str] = "sample"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("curate",)

    def config(self, spec: Spec) -> dict[str, Any]:
        return {"sampling": spec.flywheel.sampling.model_dump(mode="json"), "backend": spec.evals.backend}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        """Which version each model reference is now (another version answers differently)."""
        from domainllm.flywheel.sample import resolve

        sources = [resolve(spec, ref) for ref in spec.flywheel.sampling.models]
        return {"models": ",".join(s.name if s else "-" for s in sources)}

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.flywheel.sample import SamplingError, sample

        cfg = ctx.spec.flywheel.sampling
        rows = read_rows(ctx, "curate")
        rows.sort(key=lambda r: (not (r.get("rating") or r.get("preferred")), r["received_at"]))
        deferred = max(0, len(rows) - cfg.max_prompts)
        rows = rows[: cfg.max_prompts]
        try:
            rows, counts, used = sample(ctx.spec, rows)
        except SamplingError as exc:
            raise StageError(str(exc)) from None
        if cfg.models and not used and rows:
            raise StageError("sample: none of flywheel.sampling.models is there to sample from "
                             f"({', '.join(r.label for r in cfg.models)}); promote a model first or name an endpoint")  # fmt: skip
        write_rows(ctx, rows)
        candidates = sum(len(r["candidates"]) for r in rows)
        log.info("sample: %d prompts, %d candidates from %s (%d deferred)", len(rows), candidates, ", ".join(used) or "-", deferred)
        return StageResult(counts={"prompts": len(rows), "candidates": candidates, "deferred": deferred, **counts},
                           info={"models": used})  # fmt: skip
