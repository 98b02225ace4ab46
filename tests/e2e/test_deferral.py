"""Long waits off the workers, on real Airflow (api-server, scheduler, dag-processor and
triggerer, LocalExecutor with one slot: `core.parallelism=1`) and the fake API server, whose
kubelet holds each stage's pod until the test releases it.

Three stage tasks start pods and defer; with the one slot they leave free, a quick task of
another DAG runs and finishes. The triggerer and the scheduler (with its workers) are stopped
and started again while the pods run: nothing is deleted, and the tasks resume in fresh
processes with their pods' verdicts: the real stage's manifest and log for one, OOMKilled
(failed for good) for another; the third is marked failed by a person while it waits, and the
restarted triggerer's `on_kill` deletes its pod."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from tests.conftest import tiny_spec_doc, write_spec
from tests.operators.launchers.fake_k8s import FakeApiServer, FakeCluster, Kubelet, local_kubelet

pytestmark = pytest.mark.slow

DAGS = Path(__file__).parent / "dags"
RUNS = ("held", "oom", "killed")


def _held(release: dict[str, threading.Event], real: Kubelet) -> Kubelet:
    """Runs each pod until its run id is released, then as that run says: the real stage, or OOMKilled."""

    def play(cluster: FakeCluster, name: str) -> None:
        with cluster.lock:
            command = cluster.pods[name]["spec"]["containers"][0]["command"]
        run_id = command[command.index("--run-id") + 1]
        cluster.schedule(name, "gpu-node-1")
        cluster.start(name)
        cluster.log(name, f"training for run {run_id} ...")
        while not release[run_id].wait(0.1):
            if not cluster.alive(name):  # deleted: the task was stopped
                return
        if run_id == "oom":
            cluster.exit(name, 137, "OOMKilled")
        else:
            real(cluster, name)

    return play


def _wait(what: str, predicate, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_deferred_stages_free_the_slot_and_end_with_their_pods_verdicts_across_restarts(
        home: Path, corpora: Path, tmp_path: Path) -> None:  # fmt: skip
    from domainllm_operators.local_stack import LocalStack

    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    doc = tiny_spec_doc(corpora)
    doc["runtime"] = {
        "launcher": "kubernetes",
        "images": {name: {"ref": f"registry.example.com/domainllm/{name}:test"} for name in ("worker", "trainer", "serve")},
        "kubernetes": {"connection": "fake_k8s", "poll_interval_s": 0.2, "spec_mount_path": str(spec_dir),
                       "home": {"claim": "home", "mount_path": str(home)}, "cache": {"mount_path": str(tmp_path / "cache")}},
    }  # fmt: skip
    spec_path = write_spec(spec_dir / "spec.yaml", doc)
    spec = load_spec(spec_path)
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TORCH_EXTENSIONS_DIR")}
    base_env.update({k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "MLFLOW_", "DO_NOT"))})
    release = {run: threading.Event() for run in RUNS}
    cluster = FakeCluster(_held(release, local_kubelet(sys.executable, base_env)))

    def pod(run: str) -> str | None:
        with cluster.lock:
            return next((n for k, n in cluster.created if k == "pod" and f"-ingest-{run}-" in n), None)

    with FakeApiServer(cluster) as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))
        stack = LocalStack()
        stack.env.update({"AIRFLOW__CORE__PARALLELISM": "1", "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                          "AIRFLOW_CONN_FAKE_K8S": json.dumps({"conn_type": "kubernetes",
                                                               "extra": {"kube_config_path": str(kubeconfig)}})})  # fmt: skip
        try:
            stack.start()
            runs = {run: stack.trigger("deferred_stage", {"spec": str(spec_path), "run_id": run}) for run in RUNS}

            def state(run: str) -> str | None:
                return stack.task_states("deferred_stage", runs[run]).get("ingest")

            _wait("three deferred stage tasks", lambda: all(state(run) == "deferred" for run in RUNS))
            pods = {run: pod(run) for run in RUNS}
            assert all(pods.values()) and all(cluster.alive(p) for p in pods.values()), pods

            # the one worker slot is free: another DAG's task runs and finishes meanwhile
            quick = stack.trigger("quick", {})
            assert stack.follow("quick", quick, timeout=90, echo=lambda _: None) == "success"
            assert all(state(run) == "deferred" for run in RUNS)

            # the triggerer and the scheduler (with its LocalExecutor workers) restart mid-job
            stack.stop(only=("triggerer", "scheduler"))
            stack.start(only=("triggerer", "scheduler"))
            assert all(cluster.alive(p) for p in pods.values()) and not cluster.deleted  # a restart deletes nothing
            assert all(state(run) == "deferred" for run in RUNS)

            # a person marks one waiting task failed: the new triggerer's on_kill deletes its pod
            path = f"/api/v2/dags/deferred_stage/dagRuns/{runs['killed']}/taskInstances/ingest"
            stack._request("PATCH", path, {"new_state": "failed"})
            _wait("the killed task's pod to be deleted", lambda: not cluster.alive(pods["killed"]), timeout=30)
            release["held"].set()
            release["oom"].set()
            assert stack.follow("deferred_stage", runs["held"], timeout=120, echo=lambda _: None) == "success"
            assert stack.follow("deferred_stage", runs["oom"], timeout=60, echo=lambda _: None) == "failed"
            assert {run: state(run) for run in RUNS} == {"held": "success", "oom": "failed", "killed": "failed"}
        finally:
            stack.stop()

    logs = {run: _task_log(stack.airflow_home, runs[run]) for run in RUNS}
    assert "executor=LocalExecutor(parallelism=1)" in (stack.airflow_home / "logs" / "scheduler.log").read_text()  # one slot
    # the held stage really ran in its pod: its manifest is this attempt's, its log is in the task log
    manifest = RunLayout(spec.artifact_root, "held").read_manifest("ingest")
    assert manifest is not None and manifest.counts["records_out"] > 0
    assert "training for run held ..." in logs["held"] and "stage ingest: done in" in logs["held"]
    assert "deferring: the triggerer waits for pod" in logs["held"] and "resumed: pod" in logs["held"]
    assert pods["held"] not in cluster.pods  # delete_succeeded: cleaned up by the resumed task
    # the OOMKilled pod: failed for good with the reason, kept for inspection
    assert "ran out of memory (OOMKilled" in logs["oom"] and pods["oom"] in cluster.pods
    assert cluster.pods[pods["oom"]]["metadata"]["labels"]["domainllm/checked"] == "true"
    # the killed one: deleted with the stage's grace period, by the triggerer (not a worker)
    assert ("pod", pods["killed"], {"gracePeriodSeconds": ["30"]}) in cluster.deleted


def _task_log(airflow_home: Path, run_id: str) -> str:
    folder = airflow_home / "logs" / "dag_id=deferred_stage" / f"run_id={run_id}" / "task_id=ingest"
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("attempt=*")))
