"""Every DAG file imports without errors, and the DAGs have the shape we rely on."""

from __future__ import annotations

from tests.conftest import REPO


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors() -> None:
    bag = _bag()
    assert bag.import_errors == {}
    assert len(list((REPO / "dags").glob("*.py"))) == len(bag.dag_ids) >= 1


def test_domain_llm_shape_and_params_form() -> None:
    from domainllm.stages.names import DOMAIN_STAGES, SHARDED_STAGES, STAGE_REQUIRES

    dag = _bag().dags["domain_llm"]
    shard_tasks = [f"{s}_shard" for s in DOMAIN_STAGES if s in SHARDED_STAGES]
    assert set(dag.task_ids) == {"run_start", "plan_shards", *DOMAIN_STAGES, *shard_tasks, "approve_rollout", "run_finish"}
    # a person may approve a flywheel round's rollout: between the gate and the rollout
    assert dag.get_task("approve_rollout").upstream_task_ids == {"gate"} and "approve_rollout" in dag.get_task("rollout").upstream_task_ids
    assert dag.get_task("run_finish").is_teardown
    assert dag.get_task("run_start").downstream_task_ids == {"plan_shards"}
    for stage in DOMAIN_STAGES:
        first = f"{stage}_shard" if stage in SHARDED_STAGES else stage
        upstream = dag.get_task(first).upstream_task_ids
        # a stage's first task waits for exactly the stages it reads (the first ones wait for the plan)
        assert upstream - {"plan_shards", "approve_rollout"} == set(STAGE_REQUIRES[stage]), stage
        if stage in SHARDED_STAGES:
            mapped = dag.get_task(first)
            assert mapped.is_mapped and "plan_shards" in mapped.upstream_task_ids
            assert dag.get_task(stage).upstream_task_ids == {first} and dag.get_task(stage).reuse_shards
    # the pipeline's last stages lead to run_finish
    leaves = {s for s in DOMAIN_STAGES if not any(s in STAGE_REQUIRES[d] for d in DOMAIN_STAGES)}
    assert dag.get_task("run_finish").upstream_task_ids == leaves >= {"data_report", "rollout"}
    params = dag.params
    assert set(params.keys()) == {"spec", "run_id", "stages", "force"}
    stages = params.get_param("stages")
    assert stages.value == list(DOMAIN_STAGES)
    assert stages.schema["items"]["enum"] == list(DOMAIN_STAGES)
    assert params.get_param("force").schema["type"] == "boolean"
    assert params["spec"].endswith("examples/demo/spec.yaml")
    # the flywheel's event starts it too, with the event's spec and run id
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["domainllm-preferences"]


def test_data_flywheel_shape_schedule_and_window() -> None:
    from domainllm.flywheel.window import run_window, window_run_id
    from domainllm.stages.names import FLYWHEEL_STAGES, STAGE_REQUIRES

    dag = _bag().dags["data_flywheel"]
    assert set(dag.task_ids) == {"run_start", *FLYWHEEL_STAGES, "trigger_training", "run_finish"}
    assert not dag.catchup and dag.max_active_runs == 1 and dag.timetable.expression == "0 2 * * *"
    for stage in FLYWHEEL_STAGES:
        upstream = dag.get_task(stage).upstream_task_ids - {"run_start", "trigger_training"}
        assert upstream == set(STAGE_REQUIRES[stage]), stage
    trigger = dag.get_task("trigger_training")
    assert trigger.upstream_task_ids == {"preferences"} and [o.name for o in trigger.outlets] == ["domainllm-preferences"]
    assert set(dag.params.keys()) == {"spec", "start", "end"}
    # the window: the form's dates, else the data interval, else the day before the trigger (a
    # cron schedule's runs have no data interval in Airflow 3: start == end)
    assert run_window({"start": "2026-11-20", "end": "2026-11-22"}) == {
        "window_start": "2026-11-20T00:00:00+00:00", "window_end": "2026-11-22T00:00:00+00:00"}
    import datetime as dt

    utc = dt.UTC
    interval = run_window({"start": "", "end": ""}, dt.datetime(2026, 11, 24, 2, tzinfo=utc), dt.datetime(2026, 11, 25, 2, tzinfo=utc))
    assert interval == {"window_start": "2026-11-24T02:00:00+00:00", "window_end": "2026-11-25T02:00:00+00:00"}
    nightly = dt.datetime(2026, 11, 25, 2, tzinfo=utc)
    assert run_window({}, nightly, nightly, nightly) == interval
    manual = run_window({}, None, None, dt.datetime(2026, 11, 25, 9, 30, tzinfo=utc))
    assert manual == {"window_start": "2026-11-24T09:30:00+00:00", "window_end": "2026-11-25T09:30:00+00:00"}
    assert window_run_id(interval) == "flywheel-20261124T0200-20261125T0200"
