"""How the operators react to a stage's exit code: a user error (exit 2: bad input, a
rejected candidate) fails the task for good, anything else may be retried; the gate says
the champion stays."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from domainllm.launch import USER_ERROR
from domainllm_operators import GateOperator, RolloutOperator, StageOperator


def test_user_errors_are_not_retried() -> None:
    stage = StageOperator(stage="mix", spec_path="s.yaml", run_id="r", retries=3)
    with pytest.raises(AirflowFailException, match="stage mix failed \\(exit code 2\\)"):
        stage.failed(USER_ERROR)
    with pytest.raises(AirflowException) as crash:
        stage.failed(-9)
    assert not isinstance(crash.value, AirflowFailException)


def test_a_rejected_candidate_stops_the_dag_and_keeps_the_champion() -> None:
    gate = GateOperator(spec_path="s.yaml", run_id="r")
    assert gate.task_id == "gate" and gate.stage == "gate"
    with pytest.raises(AirflowFailException, match="candidate of run r is not promoted and the champion stays"):
        gate.failed(USER_ERROR)
    with pytest.raises(AirflowException, match="stage gate failed \\(exit code 1\\)"):
        gate.failed(1)


def test_a_rolled_back_canary_fails_for_good_and_production_keeps_serving() -> None:
    rollout = RolloutOperator(spec_path="s.yaml", run_id="r", retries=2)
    assert rollout.task_id == "rollout" and rollout.stage == "rollout"
    with pytest.raises(AirflowFailException, match="canary of run r was rolled back and the production version keeps serving"):
        rollout.failed(USER_ERROR)
    with pytest.raises(AirflowException, match="stage rollout failed \\(exit code 1\\)"):
        rollout.failed(1)
