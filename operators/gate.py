"""GateOperator: the `gate` stage as its own task kind. It launches the stage like any other;
what it adds is what the decision means for the DAG: a rejected candidate fails the task for
good (no retry can change the decision), with a message that says the champion stays, and a
promotion is announced with its registry version."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from domainllm.launch import USER_ERROR
from domainllm_operators.launchers import LaunchResult
from domainllm_operators.stage import StageOperator


class GateOperator(StageOperator):
    ui_color = "#fde8e8"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("stage", "gate")
        super().__init__(**kwargs)

    def succeeded(self, summary: dict[str, Any]) -> dict[str, Any]:
        info = summary.get("info", {})
        if info.get("already_champion"):
            self.log.info("gate: the candidate already is the champion (version %s)", info.get("version"))
        else:
            self.log.info("gate: promoted; version %s is the champion", info.get("version"))
        return summary

    def failed(self, result: LaunchResult) -> None:
        if result.exit_code == USER_ERROR:
            raise AirflowFailException(
                f"gate: the candidate of run {self.run_id} is not promoted and the champion stays; the failing checks "
                "are in the log above and in the stage's MLflow run (gate_decision.json). Nothing after the gate runs."
            )
        super().failed(result)
