"""DAGs for tests/e2e/test_deferral.py (its Airflow's whole DAG folder): one Kubernetes stage,
which defers while its pod runs, and one quick task, which needs a worker slot."""

from __future__ import annotations

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

from domainllm_operators import StageOperator

with DAG(dag_id="deferred_stage", schedule=None, catchup=False, max_active_runs=8,
         params={"spec": Param("", type="string"), "run_id": Param("", type="string")}):  # fmt: skip
    StageOperator(stage="ingest", spec_path="{{ params.spec }}", run_id="{{ params.run_id }}")

with DAG(dag_id="quick", schedule=None, catchup=False):
    BashOperator(task_id="echo", bash_command="echo a worker slot was free")
