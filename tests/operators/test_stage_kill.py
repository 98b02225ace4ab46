"""A killed task never launches its stage afterwards: Airflow's task process calls `on_kill` from
its SIGTERM handler and carries on, so a stage launched after it would run unwatched until the
task process is SIGKILLed. A kill that races with the launch stops what was launched."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

import domainllm_operators.stage as stage_module
from domainllm.launch import LaunchRequest
from domainllm_operators import StageOperator
from domainllm_operators.launchers import LocalLauncher
from tests.conftest import tiny_spec_doc, write_spec


class _TI:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class _Sleep(LocalLauncher):
    """The local launcher on `sleep 20` instead of the stage; `before_start` runs inside launch."""

    def __init__(self, before_start=lambda: None) -> None:
        super().__init__()
        self.before_start = before_start
        self.launched = False

    @staticmethod
    def argv(request: LaunchRequest) -> list[str]:
        return ["sleep", "20"]

    def launch(self, request, log, on_handle=None):
        self.before_start()
        self.launched = True
        return super().launch(request, log, on_handle)


@pytest.fixture
def operator(home: Path, tmp_path: Path) -> StageOperator:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec_doc(tmp_path))
    return StageOperator(stage="ingest", spec_path=str(spec), run_id="r")


def test_a_task_killed_before_its_stage_started_never_starts_it(operator: StageOperator,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    launcher = _Sleep()
    monkeypatch.setattr(stage_module, "get_launcher", lambda *args: launcher)
    operator.on_kill()  # SIGTERM while the task was still starting up
    with pytest.raises(AirflowException, match="the task was killed before its stage started"):
        operator.execute({"ti": _TI()})
    assert not launcher.launched


def test_a_kill_racing_with_the_launch_stops_what_was_launched(operator: StageOperator,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # on_kill after the operator's check, before the process exists: the launcher has nothing to kill yet
    launcher = _Sleep(before_start=operator.on_kill)
    kills = []
    monkeypatch.setattr(launcher, "kill", lambda: kills.append(time.monotonic()) or LocalLauncher.kill(launcher))
    monkeypatch.setattr(stage_module, "get_launcher", lambda *args: launcher)
    ti = _TI()
    t0 = time.monotonic()
    with pytest.raises(AirflowException, match=r"stage ingest failed \(exit code -15\)"):
        operator.execute({"ti": ti})
    assert time.monotonic() - t0 < 10, "the stage launched after on_kill ran on"
    assert len(kills) == 1 and "pid" in ti.xcom["handle"]
    operator.on_kill()  # a second SIGTERM: what runs is stopped once, its clean-up left alone
    assert len(kills) == 1
