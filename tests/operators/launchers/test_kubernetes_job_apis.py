"""The Kubernetes launcher's multi-node stages as a JobSet or a Kubeflow Trainer TrainJob
(`runtime.kubernetes.training.backend`), against the fake API server and its JobSet and
TrainJob controllers (fake_job_apis.py): created through the custom objects API, followed
through the pods the JobSet makes (rank 0's log live, a failed rank's tail), judged with the
same verdicts as an Indexed Job (which rank failed first, OOMKilled final, unschedulable after
the timeout, Kueue admission), found again by an attempt after a restart, and deleted with
everything they own by a kill or the clean-up."""

from __future__ import annotations

import copy
import logging
import threading
import time

import pytest

from domainllm.k8s.jobs import JOBSET_NAME_LABEL, jobset
from domainllm.k8s.pod import LABEL_CHECKED, PodTarget
from domainllm.spec.kubernetes import TrainingJobs
from tests.operators.launchers.fake_k8s import FakeCluster
from tests.operators.launchers.test_kubernetes import (
    CLUSTERS,
    K8S,
    _killed_while_running,
    _rank,
    _Records,
    _request,
    _run,
    exits,
    rank_runs,
    works_until_deleted,
)

JOBSET = K8S.model_copy(update={"training": TrainingJobs(backend="jobset")})
TRAINJOB = K8S.model_copy(update={"training": TrainingJobs(backend="trainjob")})
BACKENDS = {"jobset": JOBSET, "trainjob": TRAINJOB}
FOREGROUND = {"gracePeriodSeconds": ["0"], "propagationPolicy": ["Foreground"]}


@pytest.fixture
def log():
    logger = logging.getLogger(f"test-k8s-job-apis-{time.monotonic_ns()}")
    logger.setLevel(logging.INFO)
    records = _Records()
    logger.addHandler(records)
    return logger, records


def _nothing_left(cluster: FakeCluster) -> bool:
    return not (cluster.pods or cluster.jobs or cluster.services or cluster.custom)


def rank1_dies(cluster: FakeCluster, name: str) -> None:
    rank = _rank(cluster.pods[name])
    cluster.schedule(name, f"gpu-node-{rank}")
    cluster.start(name)
    if rank == 1:
        cluster.log(name, "RuntimeError: CUDA error: an illegal memory access was encountered")
        time.sleep(0.3)
        cluster.exit(name, 1)
        return
    while cluster.alive(name) and cluster.pods[name]["status"]["phase"] == "Running":
        cluster.log(name, "rank 0 waiting in all-reduce")
        time.sleep(0.1)


def test_a_jobset_runs_every_rank_follows_rank_0_and_goes_with_all_it_owns(log) -> None:
    seen = {}

    def capture(cluster: FakeCluster, name: str) -> None:
        seen.setdefault("jobset", copy.deepcopy(next(iter(cluster.custom.values()))))
        seen.setdefault("pods", []).append(copy.deepcopy(cluster.pods[name]))
        rank_runs(cluster, name)

    cluster, result, handles = _run(capture, _request(nodes=2, gpus=8), log, k8s=JOBSET)
    assert result.exit_code == 0, result.failure
    name = handles[0]["name"]
    assert handles[0]["kind"] == "jobset" and result.handle == f"jobset/domainllm/{name}"
    expected = jobset(_request(nodes=2, gpus=8), PodTarget(JOBSET, "spec.yaml", "mlflow-parent-1"), name)[-1]
    assert seen["jobset"]["spec"] == expected["spec"]  # what was sent is what `domainllm k8s render` shows
    assert seen["jobset"]["metadata"]["labels"] == expected["metadata"]["labels"]
    assert {p["metadata"]["labels"][JOBSET_NAME_LABEL] for p in seen["pods"]} == {name}
    assert "rank 0: loss 2.31" in log[1].lines and "rank 1: loss 2.31" not in log[1].lines  # rank 0 is followed
    assert f"created JobSet {name}" in log[1].text() and f"rendezvous {name}-node-0-0.{name}:29500" in log[1].text()
    assert cluster.created[:2] == [("jobsets", name), ("job", f"{name}-node-0")]  # the controller made the Job, not us
    assert ("jobsets", name, FOREGROUND) in cluster.deleted and _nothing_left(cluster)  # its Job, pods and Service went with it


def test_a_trainjob_runs_through_the_jobset_its_runtime_makes(log) -> None:
    pods: list[dict] = []

    def capture(cluster: FakeCluster, name: str) -> None:
        pods.append(copy.deepcopy(cluster.pods[name]))
        rank_runs(cluster, name)

    cluster, result, handles = _run(capture, _request(nodes=2, gpus=8), log, k8s=TRAINJOB)
    assert result.exit_code == 0, result.failure
    name = handles[0]["name"]
    assert handles[0]["kind"] == "trainjob" and result.handle == f"trainjob/domainllm/{name}"
    assert [c for c in cluster.created if c[0] in ("trainjobs", "jobsets")] == [("trainjobs", name), ("jobsets", name)]
    main = pods[0]["spec"]["containers"][0]
    assert main["name"] == "node" and main["command"][:4] == ["torchrun", "-m", "domainllm", "stage"]
    assert {"name": "PET_MASTER_ADDR", "value": f"{name}-node-0-0.{name}"} in main["env"]
    assert {m["name"] for m in main["volumeMounts"]} >= {"specs", "cache", "dshm"}  # the overrides reach the trainer
    assert pods[0]["metadata"]["labels"]["domainllm/step"] == "cpt" and pods[0]["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert "rank 0: loss 2.31" in log[1].lines and "runtime torch-distributed" in log[1].text()
    assert ("trainjobs", name, FOREGROUND) in cluster.deleted and _nothing_left(cluster)


@pytest.mark.parametrize(("backend", "noun"), [("jobset", "JobSet"), ("trainjob", "TrainJob")])
def test_a_failed_rank_fails_the_whole_job_says_which_and_shows_its_log(log, backend: str, noun: str) -> None:
    cluster, result, handles = _run(rank1_dies, _request(nodes=2, gpus=8), log, k8s=BACKENDS[backend])
    f = result.failure
    name = handles[0]["name"]
    assert f.reason == "ExitCode" and f.retryable and f.exit_code == 1 and result.exit_code == 1
    assert f.message.startswith(f"{noun} {name}: rank 1 failed first: pod {name}-node-0-1-")
    assert "stopped every other rank" in f.message
    assert "last 40 log lines of rank 1" in log[1].text() and "CUDA error: an illegal memory access" in log[1].text()
    assert "rank 0 waiting in all-reduce" in log[1].lines  # rank 0 followed live until the job stopped it
    kept = cluster.custom[f"{backend}s/{name}"]  # delete_succeeded: a failure is kept for inspection, never reattached to
    assert kept["metadata"]["labels"][LABEL_CHECKED] == "true" and not any(d[0] == f"{backend}s" for d in cluster.deleted)


def test_an_oomkilled_rank_is_final(log) -> None:
    def rank1_oom(cluster: FakeCluster, name: str) -> None:
        (exits(137, "OOMKilled") if _rank(cluster.pods[name]) == 1 else works_until_deleted)(cluster, name)

    _, result, _ = _run(rank1_oom, _request(nodes=2), log, k8s=JOBSET)
    f = result.failure
    assert f.reason == "OOMKilled" and not f.retryable and result.exit_code == 137
    assert "rank 1 failed first" in f.message and "OOMKilled at its 8Gi limit" in f.message


def test_a_jobset_the_cluster_cannot_place_fails_after_the_timeout_and_is_deleted(log) -> None:
    def one_node_short(cluster: FakeCluster, name: str) -> None:
        if _rank(cluster.pods[name]) == 0:
            cluster.schedule(name)
            cluster.start(name)
        else:
            cluster.unschedulable(name, "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.")

    t0 = time.monotonic()
    cluster, result, handles = _run(one_node_short, _request(nodes=2, gpus=8), log, k8s=JOBSET)
    assert 1.5 <= time.monotonic() - t0 < 10
    f = result.failure
    assert f.reason == "Unschedulable" and f.retryable and f.message.startswith(f"JobSet {handles[0]['name']}: pod ")
    assert "missing: nvidia.com/gpu (requested 8 per pod)" in f.message and "schedule_timeout_s" in f.message
    assert ("jobsets", handles[0]["name"], FOREGROUND) in cluster.deleted and _nothing_left(cluster)


def test_a_restarted_worker_follows_the_jobset_an_earlier_attempt_started(log) -> None:
    target = PodTarget(JOBSET, "spec.yaml")
    earlier = _request(nodes=2, attempt="a0")
    names = {"old": "perl-assistant-cpt-run-1-old00", "live": "perl-assistant-cpt-run-1-live0"}

    def before(cluster: FakeCluster) -> None:  # an earlier attempt's JobSet that failed (kept), and its retry's, running
        from tests.operators.launchers import fake_job_apis

        for name in names.values():
            fake_job_apis.create(cluster, "jobsets", jobset(earlier, target, name)[-1])
        deadline = time.monotonic() + 10
        while "Failed" not in str(cluster.custom[f"jobsets/{names['old']}"]["status"]) and time.monotonic() < deadline:
            time.sleep(0.02)

    def kubelet(cluster: FakeCluster, name: str) -> None:
        if name.startswith(names["old"]):
            exits(1)(cluster, name)
        else:
            rank_runs(cluster, name)

    cluster, result, handles = _run(kubelet, _request(nodes=2, attempt="a1"), log, k8s=JOBSET, before=before)
    assert handles[0]["reattached"] and handles[0]["name"] == names["live"]
    assert result.exit_code == 0 and result.attempt_id == "a0"  # the attempt that JobSet runs
    assert [c for c in cluster.created if c[0] == "jobsets"] == [("jobsets", names["old"]), ("jobsets", names["live"])]
    assert cluster.custom[f"jobsets/{names['old']}"]["metadata"]["labels"][LABEL_CHECKED] == "true"
    assert f"reattaching to jobset {names['live']}" in log[1].text()


@pytest.mark.parametrize("backend", ["jobset", "trainjob"])
def test_a_task_kill_deletes_the_object_and_everything_it_owns(log, backend: str) -> None:
    cluster, result, name = _killed_while_running(_request(nodes=2), log, BACKENDS[backend])
    assert (f"{backend}s", name, {"gracePeriodSeconds": ["5"], "propagationPolicy": ["Foreground"]}) in cluster.deleted
    assert result.failure.reason == "Killed" and _nothing_left(cluster)


def test_a_kueue_trainjob_waits_suspended_until_it_is_admitted(log) -> None:
    kueue = TRAINJOB.model_copy(update={"training": TrainingJobs(backend="trainjob", gang="kueue", queue="gpu-training")})

    def before(cluster: FakeCluster) -> None:
        def kueue_admits() -> None:
            while not cluster.custom:
                time.sleep(0.02)
            time.sleep(2.0)  # longer in the queue than schedule_timeout_s: that clock starts at the admission
            assert not cluster.pods  # a suspended TrainJob runs nothing
            cluster.admit(next(iter(cluster.custom.values()))["metadata"]["name"], "trainjobs")

        threading.Thread(target=kueue_admits, daemon=True).start()

    cluster, result, handles = _run(rank_runs, _request(nodes=2), log, k8s=kueue, before=before)
    assert result.exit_code == 0, result.failure
    name = handles[0]["name"]
    assert f"TrainJob {name} is suspended, waiting for admission (Kueue queue gpu-training)" in log[1].lines
    assert [c for c in cluster.created if c[0] == "trainjobs"] == [("trainjobs", name)]


def test_a_kueue_jobset_not_admitted_in_time_fails_retryably_and_is_deleted(log) -> None:
    kueue = JOBSET.model_copy(update={"training": TrainingJobs(backend="jobset", gang="kueue", queue="gpu-training",
                                                               admission_timeout_s=1)})  # fmt: skip
    cluster, result, handles = _run(rank_runs, _request(nodes=2), log, k8s=kueue)
    f = result.failure
    assert f.reason == "AdmissionTimeout" and f.retryable
    assert f"JobSet {handles[0]['name']} was not admitted by Kueue queue gpu-training within 1s" in f.message
    assert [kind for kind, _ in cluster.created] == ["jobsets", "job"] and _nothing_left(cluster)  # never ran a pod


def test_a_volcano_jobset_gets_its_pod_group_owned_by_it(log) -> None:
    volcano = JOBSET.model_copy(update={"training": TrainingJobs(backend="jobset", gang="volcano", queue="research")})
    seen = {}

    def capture(cluster: FakeCluster, name: str) -> None:  # Volcano schedules the gang once its PodGroup is there
        deadline = time.monotonic() + 5
        while not any(k.startswith("podgroups/") for k in cluster.custom) and time.monotonic() < deadline:
            time.sleep(0.02)
        seen.update({k: copy.deepcopy(v) for k, v in cluster.custom.items()})
        rank_runs(cluster, name)

    cluster, result, handles = _run(capture, _request(nodes=2), log, k8s=volcano)
    name = handles[0]["name"]
    assert result.exit_code == 0, result.failure
    group, owner = seen[f"podgroups/{name}"], seen[f"jobsets/{name}"]
    assert group["spec"] == {"minMember": 2, "queue": "research"}
    assert group["metadata"]["ownerReferences"] == [{"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "name": name,
                                                     "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}]  # fmt: skip
    assert _nothing_left(cluster)  # the PodGroup went with its JobSet


def test_a_cluster_without_the_api_is_a_clear_error_before_anything_is_created(log) -> None:
    def no_crd(cluster: FakeCluster) -> None:
        cluster.fault("GET", r"/apis/trainer.kubeflow.org/v1alpha1/namespaces/domainllm/trainjobs", 404, 1)

    with pytest.raises(RuntimeError) as err:
        _run(rank_runs, _request(nodes=2), log, k8s=TRAINJOB, before=no_crd)
    assert str(err.value) == ("the cluster serves no TrainJob API (trainjobs.trainer.kubeflow.org/v1alpha1): install Kubeflow "
                              "Trainer v2.1 (with the JobSet controller it installs) and the ClusterTrainingRuntime of "
                              "training.trainjob_runtime, or set runtime.kubernetes.training.backend: indexed_job (built into "
                              "Kubernetes)")  # fmt: skip
    assert not CLUSTERS[-1].created
