"""domain_llm: turn a general base model into a domain model.

Trigger it from the Airflow UI (the form asks for the spec, the run id, the stages and
whether to force), from the REST API, or with `airflow dags test domain_llm`. The data
flywheel triggers it too, when it has gathered enough new preference pairs: that run takes
the spec, the run id and the stages from the flywheel's event: on the run that trained the
serving model, it reruns what the new pairs change (dpo_data -> dpo -> evals -> gate ->
rollout) and skips the rest.
Every task launches one `domainllm` command through the launcher the spec configures
(a local process here; a Kubernetes pod in production).
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, TriggerRule

from domainllm.artifacts import slug_run_id
from domainllm.stages.names import DOMAIN_STAGES, SHARDED_STAGES, STAGE_REQUIRES
from domainllm_operators import (
    GateOperator,
    PipelineRunOperator,
    RolloutApprovalOperator,
    RolloutOperator,
    ShardPlanOperator,
    StageOperator,
)
from domainllm_operators.assets import PREFERENCES, trigger_extra
from domainllm_operators.dag_params import spec_param

with DAG(
    dag_id="domain_llm",
    description="Data -> base model -> CPT -> SFT -> DPO -> evals -> gate -> rollout",
    schedule=[PREFERENCES],  # and by hand
    catchup=False,
    max_active_runs=1,
    tags=["domainllm"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    user_defined_filters={"run_slug": slug_run_id, "trigger_extra": trigger_extra},
    params={
        "spec": spec_param(),
        "run_id": Param("", type="string", title="Run id",
                        description="Names the run's artifact folder. Empty: derived from the Airflow run id. "
                                    "Reuse an id to continue a run: finished stages are skipped."),
        "stages": Param(list(DOMAIN_STAGES), type="array", title="Stages",
                        items={"type": "string", "enum": list(DOMAIN_STAGES)},
                        description="Stages to run; the others reuse their existing output."),
        "force": Param(False, type="boolean", title="Force",
                       description="Rerun the selected stages even when their output is up to date."),
    },  # fmt: skip
) as dag:
    common = {
        "spec_path": "{{ triggering_asset_events | trigger_extra('spec', params.spec) }}",
        "run_id": "{{ params.run_id or (triggering_asset_events | trigger_extra('run_id', '')) or (run_id | run_slug) }}",
    }
    start = PipelineRunOperator(action="start", **common)
    finish = PipelineRunOperator(action="finish", trigger_rule=TriggerRule.ALL_DONE, **common)

    stage_args = {
        "force": "{{ params.force }}",
        "selected_stages": "{{ triggering_asset_events | trigger_extra('stages', params.stages) }}",
        "trigger_rule": TriggerRule.NONE_FAILED,
        **common,
    }
    # Sharded stages: one mapped task per shard (data.shards in the spec), then the
    # stage's own task, which publishes the shards' outputs as one stage output.
    shard_plan = ShardPlanOperator(**common)
    start >> shard_plan

    # Edges follow what each stage reads (STAGE_REQUIRES), so independent stages run side
    # by side (the base model trains while the data stages run).
    tasks = {}
    for stage in DOMAIN_STAGES:
        upstream = [tasks[dep] for dep in STAGE_REQUIRES[stage]] or [shard_plan]
        # a rejected candidate stops the DAG for good; a rolled-back canary fails for good
        operator = {"gate": GateOperator, "rollout": RolloutOperator}.get(stage, StageOperator)
        task = operator(stage=stage, reuse_shards=stage in SHARDED_STAGES, **stage_args)
        if stage in SHARDED_STAGES:
            shards = StageOperator.partial(task_id=f"{stage}_shard", stage=stage, **stage_args).expand(
                shard=shard_plan.output
            )
            upstream >> shards >> task
        else:
            upstream >> task
        tasks[stage] = task
    # A flywheel-triggered round waits for a person before its rollout (when approval is on);
    # otherwise this task skips itself and the rollout goes on.
    approve = RolloutApprovalOperator(dataset_version="{{ triggering_asset_events | trigger_extra('version', '') }}",
                                      flywheel_run="{{ triggering_asset_events | trigger_extra('flywheel_run_id', '') }}", **common)  # fmt: skip
    tasks["gate"] >> approve >> tasks["rollout"]
    needed = {dep for stage in DOMAIN_STAGES for dep in STAGE_REQUIRES[stage]}
    [task for stage, task in tasks.items() if stage not in needed] >> finish
    # A teardown closes the MLflow parent run whatever happened, without masking a
    # failed stage in the DAG run's own state.
    finish.as_teardown()
