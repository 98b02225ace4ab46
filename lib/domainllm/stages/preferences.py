"""Stage `preferences` (data_flywheel): the night's pairs become a new version of the
preference dataset, with lineage (the flywheel run, its window, the log files and models it
came from). Says whether enough new pairs exist since the last training round
(`flywheel.min_new_pairs`); the DAG's trigger task then starts DPO -> evals -> gate ->
rollout."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.flywheel_io import read_rows
from domainllm.stages.label import PAIRS

log = logging.getLogger(__name__)


class PreferencesStage(StageDefaults):
    name: ClassVar[str] = "preferences"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("harvest", "sample", "label")

    def config(self, spec: Spec) -> dict[str, Any]:
        from domainllm.flywheel.dataset import dataset_root

        return {"dataset": dataset_root(spec), "min_new_pairs": spec.flywheel.min_new_pairs}

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.evals.registry import PRODUCTION, by_alias
        from domainllm.flywheel.dataset import PreferenceDataset, dataset_root

        pairs = read_rows(ctx, "label", PAIRS)
        dataset = PreferenceDataset(dataset_root(ctx.spec))
        production = by_alias(ctx.spec, PRODUCTION)
        lineage = {"window": ctx.upstream["harvest"].info.get("window"), "spec": ctx.spec.name,
                   "inputs": {s: m.fingerprint for s, m in ctx.upstream.items()},
                   "models": ctx.upstream["sample"].info.get("models", []),
                   "production": {"version": production.version, "run_id": production.run_id} if production else None}  # fmt: skip
        record = dataset.append(pairs, run_id=ctx.run_id, lineage=lineage)
        pending = dataset.pending()
        ready = pending >= ctx.spec.flywheel.min_new_pairs
        log.info("preferences: version %s of %s: %d new pairs, %d in all; %d since the last training round: %s",
                 record["version"], dataset.root, record["pairs_new"], record["pairs_total"], pending,
                 f"enough (>= {ctx.spec.flywheel.min_new_pairs}) to train" if ready
                 else f"not enough yet (< {ctx.spec.flywheel.min_new_pairs})")  # fmt: skip
        return StageResult(counts={"pairs_new": record["pairs_new"], "pairs_total": record["pairs_total"], "pending": pending},
                           info={"version": record["version"], "dataset": dataset.root, "ready": ready,
                                 "training_run_id": production.run_id if production else None})  # fmt: skip
