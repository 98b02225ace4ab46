"""The rollout approval asks only when it matters: approval on, a run the flywheel's Asset
event started, and a new candidate; otherwise it skips itself and the rollout goes on (the
asking itself, with a real scheduler and API server: tests/e2e/test_data_flywheel_dag.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from domainllm_operators.approval import APPROVAL_ENV, RolloutApprovalOperator


class _TI:
    def __init__(self, gate: dict) -> None:
        self.gate = gate

    def xcom_pull(self, task_ids: str) -> dict:
        assert task_ids == "gate"
        return self.gate


@pytest.mark.parametrize(("env", "run_type", "gate", "why"), [
    ("0", "asset_triggered", {"info": {"version": "2"}}, "approval is off"),
    ("1", "manual", {"info": {"version": "2"}}, "not a flywheel-triggered round"),
    ("1", "asset_triggered", {"info": {"already_champion": True, "version": "1"}}, "already is the champion"),
])  # fmt: skip
def test_it_skips_itself_unless_it_matters(monkeypatch, env: str, run_type: str, gate: dict, why: str) -> None:
    monkeypatch.setenv(APPROVAL_ENV, env)
    op = RolloutApprovalOperator(spec_path="spec.yaml", run_id="r1")
    with pytest.raises(AirflowSkipException, match=why):
        op.execute({"dag_run": SimpleNamespace(run_type=run_type), "ti": _TI(gate)})
    assert op.retries == 0 and op.defaults == ["Reject"]  # one request per round; no answer: nothing rolls out
