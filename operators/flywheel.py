"""TriggerTrainingOperator: emits the preference dataset's Asset event when the flywheel's
`preferences` stage found enough new pairs, and marks that dataset version as handed to
training; otherwise the task is skipped (no event, no training round)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException

from domainllm.stages.names import ROUND_STAGES
from domainllm_operators.assets import PREFERENCES


class TriggerTrainingOperator(BaseOperator):
    template_fields = ("spec_path", "run_id")
    ui_color = "#fde8e8"

    def __init__(self, *, spec_path: str, run_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", "trigger_training")
        kwargs.setdefault("outlets", [PREFERENCES])
        super().__init__(**kwargs)
        self.spec_path, self.run_id = spec_path, run_id

    def execute(self, context: Context) -> dict[str, Any]:
        from domainllm.artifacts import RunLayout
        from domainllm.flywheel.dataset import PreferenceDataset
        from domainllm.spec import load_spec

        spec = load_spec(self.spec_path)
        manifest = RunLayout(spec.artifact_root, self.run_id).read_manifest("preferences")
        if manifest is None:
            raise AirflowSkipException(f"run {self.run_id} has no preferences output")
        info = manifest.info
        if not info.get("ready"):
            raise AirflowSkipException(f"{manifest.counts.get('pending', 0)} new pairs since the last training round; "
                                       f"{spec.flywheel.min_new_pairs} trigger one (flywheel.min_new_pairs)")  # fmt: skip
        dataset = PreferenceDataset(info["dataset"])
        trained = dataset.trained()
        if trained is not None and trained["version"] >= info["version"]:
            raise AirflowSkipException(f"version {info['version']} was already handed to training")
        extra = {"spec": self.spec_path, "run_id": info.get("training_run_id") or f"round-{info['version']}",
                 "version": info["version"], "flywheel_run_id": self.run_id}  # fmt: skip
        if info.get("training_run_id"):  # DPO -> evals -> gate -> rollout on the run that trained the serving version
            extra["stages"] = list(ROUND_STAGES)
        # (else nothing serves yet: a fresh run of every stage)
        context["outlet_events"][PREFERENCES].extra = extra
        dataset.mark_trained(info["version"], self.run_id)
        self.log.info("%d new pairs: training round triggered on run %s with preference dataset version %s",
                      manifest.counts.get("pending", 0), extra["run_id"], info["version"])  # fmt: skip
        return extra
