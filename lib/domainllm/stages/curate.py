"""Stage `curate` (data_flywheel): drops harvested prompts that must not be trained on
(`flywheel.curate`): low quality, matching an eval item, repeating an earlier prompt (tonight
or in the preference dataset); scrubs PII. Every drop is quarantined with its reason."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.flywheel_io import QUARANTINE, read_rows, write_rows

log = logging.getLogger(__name__)


def dataset_version(spec: Spec) -> str:
    from domainllm.flywheel.dataset import PreferenceDataset, dataset_root

    latest = PreferenceDataset(dataset_root(spec)).latest()
    return latest["version"] if latest else "none"


class CurateStage(StageDefaults):
    name: ClassVar[str] = "curate"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("harvest",)

    def config(self, spec: Spec) -> dict[str, Any]:
        return {"curate": spec.flywheel.curate.model_dump(mode="json"), "pii": spec.data.pii.model_dump(mode="json"),
                "decontamination": spec.data.decontamination.model_dump(mode="json"),
                "evals": {k: spec.evals.model_dump(mode="json")[k] for k in ("code", "choice", "judge")}}  # fmt: skip

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {"preferences": dataset_version(spec)}

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.flywheel.curate import Curator
        from domainllm.flywheel.dataset import PreferenceDataset, dataset_root

        rows = read_rows(ctx, "harvest")
        known = PreferenceDataset(dataset_root(ctx.spec)).prompt_texts()
        result = Curator(ctx.spec, known).curate(rows)
        write_rows(ctx, result.rows)
        write_rows(ctx, result.quarantine, QUARANTINE)
        log.info("curate: %d of %d prompts kept (%d known from the preference dataset); %s", len(result.rows), len(rows),
                 len(known), ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())))  # fmt: skip
        return StageResult(counts=dict(result.counts))
