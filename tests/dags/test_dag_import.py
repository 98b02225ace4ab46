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
    from domainllm.stages.names import SHARDED_STAGES, STAGE_NAMES

    dag = _bag().dags["domain_llm"]
    shard_tasks = [f"{s}_shard" for s in STAGE_NAMES if s in SHARDED_STAGES]
    assert set(dag.task_ids) == {"run_start", "plan_shards", *STAGE_NAMES, *shard_tasks, "run_finish"}
    assert dag.get_task("run_finish").is_teardown
    chain = ["run_start", "plan_shards"]
    for stage in STAGE_NAMES:
        chain += [f"{stage}_shard", stage] if stage in SHARDED_STAGES else [stage]
    chain.append("run_finish")
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    # sharded stages: one mapped task per shard, mapped over plan_shards' list
    for task_id in shard_tasks:
        mapped = dag.get_task(task_id)
        assert mapped.is_mapped and "plan_shards" in mapped.upstream_task_ids
        assert dag.get_task(task_id.removesuffix("_shard")).reuse_shards
    params = dag.params
    assert set(params.keys()) == {"spec", "run_id", "stages", "force"}
    stages = params.get_param("stages")
    assert stages.value == list(STAGE_NAMES)
    assert stages.schema["items"]["enum"] == list(STAGE_NAMES)
    assert params.get_param("force").schema["type"] == "boolean"
    assert params["spec"].endswith("examples/demo/spec.yaml")
