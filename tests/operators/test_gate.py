"""How the operators react to how a launch ended: a user error (exit 2: bad input, a
rejected candidate) fails the task for good, anything else may be retried; what the launcher
knows better (an OOMKilled pod: not retried; an evicted one: retried) decides over the exit
code and its message reaches the task's error; the gate says the champion stays."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from domainllm.k8s.status import Failure
from domainllm.launch import USER_ERROR
from domainllm_operators import GateOperator, RolloutOperator, StageOperator
from domainllm_operators.launchers import LaunchResult


def _ended(code: int, failure: Failure | None = None) -> LaunchResult:
    return LaunchResult(exit_code=code, duration_s=1.0, handle="pod/ns/p", failure=failure)


def test_user_errors_are_not_retried() -> None:
    stage = StageOperator(stage="mix", spec_path="s.yaml", run_id="r", retries=3)
    with pytest.raises(AirflowFailException, match="stage mix failed \\(exit code 2\\)"):
        stage.failed(_ended(USER_ERROR))
    with pytest.raises(AirflowException) as crash:
        stage.failed(_ended(-9))
    assert not isinstance(crash.value, AirflowFailException)


def test_the_launchers_verdict_decides_and_is_told() -> None:
    stage = StageOperator(stage="cpt", spec_path="s.yaml", run_id="r", retries=3)
    oom = Failure("OOMKilled", "pod p ran out of memory (OOMKilled at its 8Gi limit on node n1)", False, 137)
    with pytest.raises(AirflowFailException, match=r"stage cpt failed \(exit code 137\) for run r: pod p ran out of memory"):
        stage.failed(_ended(137, oom))
    evicted = Failure("Evicted", "pod p was evicted from node n1; a retry resumes from the last checkpoint", True)
    with pytest.raises(AirflowException, match="evicted from node n1") as retried:
        stage.failed(_ended(-1, evicted))
    assert not isinstance(retried.value, AirflowFailException)


def test_a_rejected_candidate_stops_the_dag_and_keeps_the_champion() -> None:
    gate = GateOperator(spec_path="s.yaml", run_id="r")
    assert gate.task_id == "gate" and gate.stage == "gate"
    with pytest.raises(AirflowFailException, match="candidate of run r is not promoted and the champion stays"):
        gate.failed(_ended(USER_ERROR))
    with pytest.raises(AirflowException, match="stage gate failed \\(exit code 1\\)"):
        gate.failed(_ended(1))


def test_a_rolled_back_canary_fails_for_good_and_production_keeps_serving() -> None:
    rollout = RolloutOperator(spec_path="s.yaml", run_id="r", retries=2)
    assert rollout.task_id == "rollout" and rollout.stage == "rollout"
    with pytest.raises(AirflowFailException, match="canary of run r was rolled back and the production version keeps serving"):
        rollout.failed(_ended(USER_ERROR))
    with pytest.raises(AirflowException, match="stage rollout failed \\(exit code 1\\)"):
        rollout.failed(_ended(1))
