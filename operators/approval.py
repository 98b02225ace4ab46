"""RolloutApprovalOperator: a person approves a flywheel-triggered round before its rollout
(Airflow 3's human-in-the-loop ApprovalOperator; the request is under "Required Actions" in
the UI, and in the REST API's hitlDetails).

It asks only when it matters: `DOMAINLLM_ROLLOUT_APPROVAL` is on (the Helm chart's default;
the demo runs with it off), the run was started by the flywheel's Asset event (a round made
from users' traffic; a run triggered by hand was started by a person already), and the gate
promoted a new candidate. Otherwise it skips itself and the rollout goes on. The approver
sees the gate's comparison and checks and the principals the round's harvest flagged.
Reject, or no answer within `DOMAINLLM_ROLLOUT_APPROVAL_TIMEOUT_H` hours (default 72): the
rollout is skipped and `champion` goes back to the serving version."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context, TriggerRule
from airflow.sdk.exceptions import AirflowSkipException

APPROVAL_ENV = "DOMAINLLM_ROLLOUT_APPROVAL"
TIMEOUT_ENV = "DOMAINLLM_ROLLOUT_APPROVAL_TIMEOUT_H"


def approval_on() -> bool:
    return os.environ.get(APPROVAL_ENV, "0").strip().lower() in ("1", "true", "yes", "on")


class RolloutApprovalOperator(ApprovalOperator):
    template_fields = (*ApprovalOperator.template_fields, "spec_path", "run_id", "dataset_version", "flywheel_run")
    ui_color = "#fff4d6"

    def __init__(self, *, spec_path: str, run_id: str, dataset_version: str = "", flywheel_run: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("task_id", "approve_rollout")
        kwargs.setdefault("subject", "Roll out the flywheel round's candidate?")
        kwargs.setdefault("defaults", "Reject")  # no answer in time: nothing rolls out
        kwargs.setdefault("response_timeout", timedelta(hours=float(os.environ.get(TIMEOUT_ENV, "72"))))
        kwargs.setdefault("retries", 0)  # a retry would open a second request
        kwargs.setdefault("trigger_rule", TriggerRule.NONE_FAILED)
        super().__init__(**kwargs)
        self.spec_path, self.run_id, self.dataset_version, self.flywheel_run = spec_path, run_id, dataset_version, flywheel_run

    def execute(self, context: Context) -> Any:
        from domainllm.flywheel.approval import approval_body
        from domainllm.spec import load_spec

        if not approval_on():
            raise AirflowSkipException(f"rollout approval is off ({APPROVAL_ENV})")
        if str(getattr(context["dag_run"], "run_type", "")) not in ("asset_triggered", "DagRunType.ASSET_TRIGGERED"):
            raise AirflowSkipException("not a flywheel-triggered round: a person started this run; no approval asked")
        gate = context["ti"].xcom_pull(task_ids="gate") or {}
        if (gate.get("info") or {}).get("already_champion"):
            raise AirflowSkipException("the candidate already is the champion: nothing new to approve")
        self.body = approval_body(load_spec(self.spec_path), self.run_id, self.dataset_version or None, self.flywheel_run or None)
        self.log.info("asking for approval:\n%s", self.body)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        chosen = (event or {}).get("chosen_options") or []
        if self.APPROVE not in chosen:  # rejected, or timed out into the default
            from domainllm.flywheel.approval import reject
            from domainllm.spec import load_spec

            gate = context["ti"].xcom_pull(task_ids="gate") or {}
            reject(load_spec(self.spec_path), (gate.get("info") or {}).get("version"))
        return super().execute_complete(context, event)
