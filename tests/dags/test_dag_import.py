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
    from domainllm.stages.names import SHARDED_STAGES, STAGE_NAMES, STAGE_REQUIRES

    dag = _bag().dags["domain_llm"]
    shard_tasks = [f"{s}_shard" for s in STAGE_NAMES if s in SHARDED_STAGES]
    assert set(dag.task_ids) == {"run_start", "plan_shards", *STAGE_NAMES, *shard_tasks, "run_finish"}
    assert dag.get_task("run_finish").is_teardown
    assert dag.get_task("run_start").downstream_task_ids == {"plan_shards"}
    for stage in STAGE_NAMES:
        first = f"{stage}_shard" if stage in SHARDED_STAGES else stage
        upstream = dag.get_task(first).upstream_task_ids
        # a stage's first task waits for exactly the stages it reads (the first ones wait for the plan)
        assert upstream - {"plan_shards"} == set(STAGE_REQUIRES[stage]), stage
        if stage in SHARDED_STAGES:
            mapped = dag.get_task(first)
            assert mapped.is_mapped and "plan_shards" in mapped.upstream_task_ids
            assert dag.get_task(stage).upstream_task_ids == {first} and dag.get_task(stage).reuse_shards
    # the pipeline's last stages lead to run_finish
    leaves = {s for s in STAGE_NAMES if not any(s in deps for deps in STAGE_REQUIRES.values())}
    assert dag.get_task("run_finish").upstream_task_ids == leaves >= {"data_report", "gate"}
    params = dag.params
    assert set(params.keys()) == {"spec", "run_id", "stages", "force"}
    stages = params.get_param("stages")
    assert stages.value == list(STAGE_NAMES)
    assert stages.schema["items"]["enum"] == list(STAGE_NAMES)
    assert params.get_param("force").schema["type"] == "boolean"
    assert params["spec"].endswith("examples/demo/spec.yaml")
