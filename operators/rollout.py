"""RolloutOperator: the `rollout` stage as its own task kind. It launches the stage like any
other; what it adds is what the outcome means: a canary rolled back fails the task for good
(the canary was judged; a retry would roll out the same version again), with a message that
says which version keeps serving, and a promotion is announced with where to reach it."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from domainllm.launch import USER_ERROR
from domainllm_operators.launchers import LaunchResult
from domainllm_operators.stage import StageOperator


class RolloutOperator(StageOperator):
    ui_color = "#e8fde8"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("stage", "rollout")
        super().__init__(**kwargs)

    def succeeded(self, summary: dict[str, Any]) -> dict[str, Any]:
        info = summary.get("info", {})
        if not info.get("enabled", True):
            self.log.info("rollout: serving.enabled is false; nothing was rolled out")
        else:
            self.log.info("rollout: version %s serves all traffic at %s/v1 (%s)", info.get("version"), info.get("gateway_url"),
                          info.get("result"))  # fmt: skip
        return summary

    def failed(self, result: LaunchResult) -> None:
        if result.exit_code == USER_ERROR:
            raise AirflowFailException(
                f"rollout: the canary of run {self.run_id} was rolled back and the production version keeps serving; "
                "the failed step and its reasons are in the log above and in the stage's MLflow run (rollout_steps.json)."
            )
        super().failed(result)
