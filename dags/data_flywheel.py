"""data_flywheel: what users asked yesterday becomes tomorrow's preference data.

Nightly (no catch-up, one run at a time) over the previous day's serving logs, or by hand
from the Airflow UI over any window (`start`, `end`):
harvest (requests + feedback) -> curate (PII, duplicates, eval prompts, low quality) ->
sample (candidate answers from several model versions) -> label (feedback, judge or rules)
-> preferences (a new version of the preference dataset, with lineage) -> trigger_training
(when enough new pairs exist: the Asset event that starts domain_llm's DPO -> evals -> gate
-> rollout) and flywheel_report (counts, label sources, margins, what was triggered).
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Param, TriggerRule

from domainllm.flywheel.window import run_window, window_run_id
from domainllm.stages.names import FLYWHEEL_STAGES, STAGE_REQUIRES
from domainllm_operators import PipelineRunOperator, StageOperator, TriggerTrainingOperator
from domainllm_operators.dag_params import spec_param

SCHEDULE = os.environ.get("DOMAINLLM_FLYWHEEL_SCHEDULE", "0 2 * * *")  # 02:00 UTC, over the day before

# The window: the form's dates when given, else the 24 hours before the run (see run_window).
WINDOW = "{{ params | run_window(data_interval_start, data_interval_end, dag_run.run_after) }}"

with DAG(
    dag_id="data_flywheel",
    description="Serving logs -> curated prompts -> sampled answers -> labelled pairs -> preference dataset -> next DPO round",
    schedule=SCHEDULE,  # no start_date: the first nightly run is the next one, not one for last night at unpause
    catchup=False,
    max_active_runs=1,
    tags=["domainllm", "flywheel"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
    user_defined_filters={"run_window": run_window, "window_run_id": window_run_id},
    params={
        "spec": spec_param(),
        "start": Param("", type="string", title="Window start (UTC)",
                       description="e.g. 2026-11-20 or 2026-11-20T06:00. Empty: 24 hours before the run's end."),
        "end": Param("", type="string", title="Window end (UTC, exclusive)", description="Empty: when the run was triggered."),
    },  # fmt: skip
) as dag:
    common = {
        "spec_path": "{{ params.spec }}",
        # one run id per window: rerunning a window continues its run, another window is another run
        "run_id": "{{ params | run_window(data_interval_start, data_interval_end, dag_run.run_after) | window_run_id }}",
    }
    start = PipelineRunOperator(action="start", run_params=WINDOW, **common)
    finish = PipelineRunOperator(action="finish", trigger_rule=TriggerRule.ALL_DONE, **common)

    tasks = {}
    for stage in FLYWHEEL_STAGES:
        task = StageOperator(stage=stage, trigger_rule=TriggerRule.NONE_FAILED, **common)
        upstream = [tasks[dep] for dep in STAGE_REQUIRES[stage]] or [start]
        upstream >> task
        tasks[stage] = task
    trigger = TriggerTrainingOperator(**common)
    tasks["preferences"] >> trigger >> tasks["flywheel_report"]
    tasks["flywheel_report"] >> finish
    finish.as_teardown()
