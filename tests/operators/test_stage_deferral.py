"""StageOperator on the Kubernetes launcher defers: `execute` creates (or reattaches to) the
pod or job, puts its handle in XCom and raises TaskDeferred with a trigger made of plain JSON;
a fresh operator (another worker) resumes with the trigger's event, really produced by the
trigger against the fake API server, and ends as the blocking path ends: the manifest's
summary, or the launcher's verdict as a retryable or final failure, the container's log (rank
0's, failed ranks' tails) in the task log, clean-up per policy. `deferrable: false` and the
local launcher wait in the worker as before."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowTaskTimeout,
    TaskDeferralError,
    TaskDeferred,
)

from domainllm.launch import USER_ERROR
from domainllm_operators import StageOperator
from domainllm_operators.triggers import KubernetesStageTrigger
from tests.conftest import tiny_spec_doc, write_spec
from tests.operators.conftest import CONNECTION
from tests.operators.launchers.fake_k8s import FakeCluster, local_kubelet
from tests.operators.launchers.test_kubernetes import _rank, exits, works_until_deleted


class _TI:
    """What the operator uses of its task instance: XCom."""

    task_id = "ingest"
    map_index = -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = json.loads(json.dumps(value))  # as stored

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        return self.xcom.get(key)


def _spec(home: Path, tmp_path: Path, corpora: Path | None = None, **k8s: Any) -> str:
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir(exist_ok=True)
    doc = tiny_spec_doc(corpora or tmp_path)
    doc["runtime"] = {
        "launcher": "kubernetes", "grace_period_s": 5,
        "images": {name: {"ref": f"registry.example.com/domainllm/{name}:test"} for name in ("worker", "trainer", "serve")},
        "stages": {"cpt": {"nodes": 2}},
        "kubernetes": {"connection": CONNECTION, "poll_interval_s": 0.05, "schedule_timeout_s": 1.5, "spec_mount_path": str(spec_dir),
                       "home": {"claim": "home", "mount_path": str(home)}, "cache": {"mount_path": str(tmp_path / "cache")}, **k8s},
    }  # fmt: skip
    return str(write_spec(spec_dir / "spec.yaml", doc))


def _defer(spec: str, ti: _TI, stage: str = "ingest", **kwargs: Any) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        StageOperator(stage=stage, spec_path=spec, run_id="r1", **kwargs).execute({"ti": ti})
    return deferred.value


def _resume(spec: str, deferred: TaskDeferred, ti: _TI, stage: str = "ingest", during=None, **kwargs: Any) -> Any:
    """What the triggerer and a fresh worker do: the trigger re-created from its stored kwargs
    runs to its event, then a new operator resumes with it."""
    classpath, stored = deferred.trigger.serialize()
    assert classpath == "domainllm_operators.triggers.KubernetesStageTrigger"
    trigger = KubernetesStageTrigger(**json.loads(json.dumps(stored)))

    async def first_event() -> dict[str, Any]:
        side = asyncio.create_task(asyncio.to_thread(during)) if during else None
        async with asyncio.timeout(30):
            event = await anext(trigger.run())
        await trigger.cleanup()
        if side is not None:
            await side
        return event.payload

    event = json.loads(json.dumps(asyncio.run(first_event())))
    op = StageOperator(stage=stage, spec_path=spec, run_id="r1", **kwargs)
    return op.resume_execution(deferred.method_name, {"event": event, **(deferred.kwargs or {})}, {"ti": ti})


def _output(capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    return out + err


def _real_kubelet():
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TORCH_EXTENSIONS_DIR")}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "MLFLOW_", "DO_NOT"))})
    return local_kubelet(sys.executable, env)


def test_a_stage_defers_reattaches_after_a_lost_worker_and_resumes_with_its_manifest(
        fake_cluster, home: Path, corpora: Path, tmp_path: Path, capfd) -> None:  # fmt: skip
    cluster = fake_cluster(_real_kubelet())
    spec = _spec(home, tmp_path, corpora)
    first = _TI()
    deferred = _defer(spec, first)
    handle = first.xcom["handle"]
    assert deferred.method_name == "execute_complete" and not deferred.kwargs  # the event carries what the resume needs
    assert handle["kind"] == "pod" and not handle["reattached"] and handle["attempt_id"] == first.xcom["launch"]["attempt_id"]
    assert deferred.trigger.serialize()[1]["handle"] == handle and deferred.trigger.serialize()[1]["deadline"] is None

    # the worker is lost before the task deferred (a scheduler restart): the retry finds the pod
    retry = _TI()
    again = _defer(spec, retry)
    assert retry.xcom["handle"] == {**handle, "reattached": True}
    assert retry.xcom["launch"]["attempt_id"] != handle["attempt_id"]
    assert [kind for kind, _ in cluster.created] == ["pod"]  # no duplicate

    summary = _resume(spec, again, retry)
    assert summary["stage"] == "ingest" and summary["counts"]["records_out"] > 0
    out = _output(capfd)
    assert "stage ingest: done in" in out and f"the log of pod {handle['name']}:" in out  # the pod's log, in the task log
    assert f"resumed: pod {handle['name']} ended" in out
    assert handle["name"] not in cluster.pods  # delete_succeeded


@pytest.mark.parametrize(("kubelet", "final", "why"), [
    (exits(137, "OOMKilled"), True, "ran out of memory (OOMKilled at its 4Gi limit"),
    (exits(143, reason="Evicted", message="The node was low on resource: memory."), False, "evicted from node gpu-node-1"),
    (exits(USER_ERROR), True, "the stage cannot succeed as configured"),
    (exits(1), False, "exited 1 on node gpu-node-1"),
], ids=["oomkilled", "evicted", "user-error", "crash"])  # fmt: skip
def test_the_resumed_task_fails_with_the_pods_verdict(fake_cluster, home: Path, tmp_path: Path, capfd, kubelet, final: bool,
                                                      why: str) -> None:  # fmt: skip
    cluster = fake_cluster(kubelet)
    spec = _spec(home, tmp_path)
    ti = _TI()
    deferred = _defer(spec, ti)
    with pytest.raises(AirflowException, match=r"stage ingest failed \(exit code -?\d+\) for run r1: ") as failed:
        _resume(spec, deferred, ti)
    assert why in str(failed.value)
    assert isinstance(failed.value, AirflowFailException) is final  # retried only where a retry can help
    assert "training..." in _output(capfd)  # the container's log
    name = ti.xcom["handle"]["name"]
    assert cluster.pods[name]["metadata"]["labels"]["domainllm/checked"] == "true"  # kept for inspection, never reattached


def test_a_job_whose_rank_fails_says_which_and_shows_its_log(fake_cluster, home: Path, tmp_path: Path, capfd) -> None:
    def rank1_dies(cluster: FakeCluster, name: str) -> None:
        if _rank(cluster.pods[name]) == 1:
            cluster.schedule(name, "gpu-node-1")
            cluster.start(name)
            cluster.log(name, "RuntimeError: CUDA error: an illegal memory access was encountered")
            time.sleep(0.3)
            cluster.exit(name, 1)
        else:
            cluster.schedule(name, "gpu-node-0")
            cluster.start(name)
            cluster.log(name, "rank 0: step 1, loss 2.31")
            while cluster.alive(name) and cluster.pods[name]["status"]["phase"] == "Running":
                time.sleep(0.05)

    cluster = fake_cluster(rank1_dies)
    spec = _spec(home, tmp_path)
    ti = _TI()
    deferred = _defer(spec, ti, stage="cpt")
    assert ti.xcom["handle"]["kind"] == "job" and deferred.trigger.serialize()[1]["nodes"] == 2
    with pytest.raises(AirflowException, match="rank 1 failed first") as failed:
        _resume(spec, deferred, ti, stage="cpt")
    assert not isinstance(failed.value, AirflowFailException)
    out = _output(capfd)
    assert "rank 0: step 1, loss 2.31" in out and "the rank 0 log of pod" in out  # rank 0's log
    assert "CUDA error: an illegal memory access" in out and "last 40 log lines of rank 1" in out
    assert cluster.jobs[ti.xcom["handle"]["name"]]["metadata"]["labels"]["domainllm/checked"] == "true"


@pytest.mark.parametrize(("backend", "noun"), [("jobset", "JobSet"), ("trainjob", "TrainJob")])
def test_a_jobset_or_trainjob_stage_defers_and_resumes_with_its_verdict(fake_cluster, home: Path, tmp_path: Path, capfd,
                                                                        monkeypatch, backend: str, noun: str) -> None:  # fmt: skip
    """`training.backend: jobset` / `trainjob`: the stage task defers while the object runs and
    resumes with the same verdict an Indexed Job gives (the rank, rank 0's log, kept for inspection)."""
    from domainllm_operators import triggers

    monkeypatch.setattr(triggers, "MIN_DEFERRAL_S", 0.0)  # no Airflow here: no scheduler race to wait out

    def rank1_oom(cluster: FakeCluster, name: str) -> None:
        (exits(137, "OOMKilled") if _rank(cluster.pods[name]) == 1 else works_until_deleted)(cluster, name)

    cluster = fake_cluster(rank1_oom)
    spec = _spec(home, tmp_path, training={"backend": backend})
    ti = _TI()
    deferred = _defer(spec, ti, stage="cpt")
    handle = ti.xcom["handle"]
    assert handle["kind"] == backend and deferred.trigger.serialize()[1]["handle"] == handle
    with pytest.raises(AirflowFailException, match=f"{noun} {handle['name']}: rank 1 failed first: .* ran out of memory"):
        _resume(spec, deferred, ti, stage="cpt")  # OOMKilled: final, no retry
    assert f"the rank 0 log of pod {handle['name']}-node-0-0-" in _output(capfd)
    assert cluster.custom[f"{backend}s/{handle['name']}"]["metadata"]["labels"]["domainllm/checked"] == "true"


def test_a_job_kueue_never_admits_fails_retryably_and_is_deleted(fake_cluster, home: Path, tmp_path: Path) -> None:
    cluster = fake_cluster(works_until_deleted)
    spec = _spec(home, tmp_path, training={"gang": "kueue", "queue": "gpu-training", "admission_timeout_s": 1})
    ti = _TI()
    deferred = _defer(spec, ti, stage="cpt")
    with pytest.raises(AirflowException, match="not admitted by Kueue queue gpu-training within 1s") as failed:
        _resume(spec, deferred, ti, stage="cpt")
    assert not isinstance(failed.value, AirflowFailException) and "admission_timeout_s" in str(failed.value)
    job = ti.xcom["handle"]["name"]
    assert ("job", job) in cluster.created and job not in cluster.jobs and not cluster.pods  # never ran a pod


def test_execution_timeout_bounds_the_deferred_wait_and_deletes_the_pod(fake_cluster, home: Path, tmp_path: Path) -> None:
    cluster = fake_cluster(works_until_deleted)
    spec = _spec(home, tmp_path)
    ti = _TI()
    t0 = time.time()
    deferred = _defer(spec, ti, execution_timeout=dt.timedelta(seconds=1.5))
    deadline = deferred.trigger.serialize()[1]["deadline"]
    assert t0 + 1.5 <= deadline < time.time() + 1.5  # an absolute time: a restarted triggerer keeps it
    with pytest.raises(AirflowTaskTimeout, match="ran past the task's execution_timeout"):
        _resume(spec, deferred, ti, execution_timeout=dt.timedelta(seconds=1.5))
    assert ti.xcom["handle"]["name"] not in cluster.pods


def test_a_failed_trigger_leaves_the_pod_and_says_how_to_stop_it(fake_cluster, home: Path, tmp_path: Path, capfd) -> None:
    cluster = fake_cluster(works_until_deleted)
    spec = _spec(home, tmp_path)
    ti = _TI()
    _defer(spec, ti)
    name = ti.xcom["handle"]["name"]
    op = StageOperator(stage="ingest", spec_path=spec, run_id="r1")
    with pytest.raises(TaskDeferralError):
        op.resume_execution("__fail__", {"error": "Trigger failure", "traceback": ["ImportError: no module"]}, {"ti": ti})
    assert cluster.alive(name) and not cluster.deleted  # never deleted on a guess: a retry reattaches to it
    assert f"kubectl -n domainllm delete pod {name}" in _output(capfd)


def test_deferrable_false_waits_in_the_worker(fake_cluster, home: Path, tmp_path: Path) -> None:
    fake_cluster(exits(0))
    spec = _spec(home, tmp_path, deferrable=False)
    ti = _TI()
    # no TaskDeferred: the worker waited to the end (the fake pod published no manifest)
    with pytest.raises(AirflowException, match="exited 0 but published no manifest"):
        StageOperator(stage="ingest", spec_path=spec, run_id="r1").execute({"ti": ti})
    assert ti.xcom["handle"]["kind"] == "pod"
