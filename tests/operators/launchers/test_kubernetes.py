"""The Kubernetes launcher against a fake API server (tests/operators/launchers/fake_k8s.py)
that plays each scenario the cluster can answer with: success with the log streamed, a pod
the cluster cannot place, an image that cannot be pulled, a missing Secret, OOMKilled,
evicted, preempted, a user error, a restarted worker that finds its pod, a task kill, and a
multi-node job whose rank fails. The real provider hook and client talk HTTP to it."""

from __future__ import annotations

import copy
import logging
import threading
import time

import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

from domainllm.k8s.pod import LABEL_ATTEMPT, LABEL_CHECKED, PodTarget, stage_pod
from domainllm.k8s.rbac import LAUNCHER_RULES
from domainllm.launch import USER_ERROR, LaunchRequest
from domainllm.spec.kubernetes import KubernetesConfig, TrainingJobs
from domainllm.spec.runtime import NodePool, Resources
from domainllm_operators.launchers.kubernetes import KubernetesLauncher
from tests.operators.launchers.fake_k8s import FakeApiServer, FakeCluster

K8S = KubernetesConfig(poll_interval_s=0.05, schedule_timeout_s=1.5, startup_timeout_s=3)
GPU_POOL = NodePool(node_selector={"pool": "gpu"}, tolerations=({"key": "nvidia.com/gpu", "operator": "Exists"},))


def _request(step: str = "cpt", nodes: int = 1, gpus: int = 0, attempt: str = "a1") -> LaunchRequest:
    return LaunchRequest(
        name=step, run_id="run-1", command=("domainllm", "stage", "run", step, "--spec", "/specs/spec.yaml", "--run-id", "run-1"),
        image="trainer", image_ref="registry.example.com/domainllm/trainer:0.1.0", python=None,
        env={"DOMAINLLM_ATTEMPT_ID": attempt},
        resources=Resources(cpu="2", memory="8Gi", gpus=gpus, nodes=nodes, node_pool="gpu" if gpus else None),
        node_pool=GPU_POOL if gpus else None,
        labels={"domainllm/run-id": "run-1", "domainllm/step": step, "domainllm/pipeline": "perl-assistant"},
        grace_period_s=5,
    )  # fmt: skip


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def log():
    logger = logging.getLogger(f"test-k8s-{time.monotonic_ns()}")
    logger.setLevel(logging.INFO)
    records = _Records()
    logger.addHandler(records)
    return logger, records


def _launcher(server: FakeApiServer, k8s: KubernetesConfig = K8S) -> KubernetesLauncher:
    hook = KubernetesHook(conn_id=None, kubernetes_conn_id=None, config_dict=server.kubeconfig())
    return KubernetesLauncher(PodTarget(k8s, "spec.yaml", "mlflow-parent-1"), hook=hook)


CLUSTERS: list[FakeCluster] = []
"""Every fake cluster a test talked to (the RBAC test reads what was asked of them)."""


def _run(kubelet, request: LaunchRequest, log, k8s: KubernetesConfig = K8S, before=None):
    cluster = FakeCluster(kubelet)
    CLUSTERS.append(cluster)
    handles: list[dict] = []
    with FakeApiServer(cluster) as server:
        if before is not None:
            before(cluster)
        result = _launcher(server, k8s).launch(request, log[0], on_handle=handles.append)
    return cluster, result, handles


# -- kubelet scripts -----------------------------------------------------------------------------


def succeeds(cluster: FakeCluster, name: str) -> None:
    time.sleep(0.1)
    cluster.schedule(name)
    cluster.start(name)
    for i in range(3):
        cluster.log(name, f"INFO domainllm.stages: step {i}")
        time.sleep(0.05)
    cluster.exit(name, 0)


def exits(code: int, container_reason: str | None = None, **status):
    def play(cluster: FakeCluster, name: str) -> None:
        cluster.schedule(name)
        cluster.start(name)
        cluster.log(name, "training...")
        time.sleep(0.1)
        cluster.exit(name, code, container_reason, **status)

    return play


def test_a_stage_pod_runs_streams_its_log_and_is_deleted(log) -> None:
    cluster, result, handles = _run(succeeds, _request(), log)
    assert result.exit_code == 0 and result.failure is None and result.attempt_id == "a1"
    name = handles[0]["name"]
    assert handles == [{"launcher": "kubernetes", "kind": "pod", "name": name, "namespace": "domainllm", "reattached": False,
                        "attempt_id": "a1"}]  # fmt: skip
    assert result.handle == f"pod/domainllm/{name}" and name.startswith("perl-assistant-cpt-run-1-")
    lines = log[1].lines
    steps = [line for line in lines if line.startswith("INFO domainllm.stages: step")]
    assert steps == [f"INFO domainllm.stages: step {i}" for i in range(3)]  # every line, in order, no prefix
    assert any("event" in line and "Scheduled" in line for line in lines)
    # what was sent: the rendered pod (labels for reattach, the attempt, lineage annotations)
    sent = cluster.deleted and [d for d in cluster.deleted if d[0] == "pod"]
    assert sent and sent[0][1] == name  # delete_succeeded: a finished pod is removed
    assert ("POST", "/api/v1/namespaces/domainllm/pods") in cluster.requests


def test_the_pod_sent_is_the_rendered_one(log) -> None:
    seen = {}

    def capture(cluster: FakeCluster, name: str) -> None:
        seen["pod"] = copy.deepcopy(cluster.pods[name])
        succeeds(cluster, name)

    _run(capture, _request(gpus=2), log)
    pod = seen["pod"]
    expected = stage_pod(_request(gpus=2), PodTarget(K8S, "spec.yaml", "mlflow-parent-1"), pod["metadata"]["name"])
    assert pod["spec"] == expected["spec"]
    assert pod["metadata"]["labels"][LABEL_ATTEMPT] == "a1"
    assert pod["metadata"]["annotations"]["domainllm/mlflow-run-id"] == "mlflow-parent-1"
    assert pod["spec"]["containers"][0]["command"][:3] == ["torchrun", "--standalone", "--nproc-per-node=2"]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2


def test_unschedulable_fails_after_the_timeout_naming_the_missing_resource(log) -> None:
    def no_gpus(cluster: FakeCluster, name: str) -> None:
        cluster.unschedulable(name, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
                                    "available: 3 No preemption victims found for incoming pod.")  # fmt: skip

    t0 = time.monotonic()
    cluster, result, handles = _run(no_gpus, _request(gpus=8), log)
    assert 1.5 <= time.monotonic() - t0 < 10
    f = result.failure
    assert f is not None and f.reason == "Unschedulable" and f.retryable
    assert "missing: nvidia.com/gpu (requested 8 per pod)" in f.message and "schedule_timeout_s" in f.message
    assert any(d[:2] == ("pod", handles[0]["name"]) for d in cluster.deleted)  # never leaves a pending pod behind
    assert "FailedScheduling" in log[1].text()


def test_an_image_that_cannot_be_pulled_fails_at_once_for_good(log) -> None:
    def bad_image(cluster: FakeCluster, name: str) -> None:
        cluster.schedule(name)
        cluster.waiting(name, "ErrImagePull", 'failed to pull image "registry.example.com/domainllm/trainer:0.1.0": not found')

    t0 = time.monotonic()
    cluster, result, handles = _run(bad_image, _request(), log)
    assert time.monotonic() - t0 < 1.5  # no timeout waited out
    assert result.failure.reason == "ImagePull" and not result.failure.retryable
    assert "not found" in result.failure.message and "runtime.images" in result.failure.message
    assert any(d[:2] == ("pod", handles[0]["name"]) for d in cluster.deleted)


def test_a_transient_pull_error_is_waited_out(log) -> None:
    def slow_registry(cluster: FakeCluster, name: str) -> None:
        cluster.schedule(name)
        cluster.waiting(name, "ImagePullBackOff", "Back-off pulling image: 429 Too Many Requests: rate limit")
        time.sleep(0.3)
        succeeds(cluster, name)

    _, result, _ = _run(slow_registry, _request(), log)
    assert result.exit_code == 0


def test_a_missing_secret_fails_for_good_and_says_which_setting(log) -> None:
    def no_secret(cluster: FakeCluster, name: str) -> None:
        cluster.schedule(name)
        cluster.waiting(name, "CreateContainerConfigError", 'secret "domainllm-mlflow" not found')

    _, result, _ = _run(no_secret, _request(), log)
    assert result.failure.reason == "Config" and not result.failure.retryable
    assert 'secret "domainllm-mlflow" not found' in result.failure.message and "env_from_secrets" in result.failure.message


def test_oomkilled_is_not_retried_and_the_pod_is_kept_for_inspection(log) -> None:
    cluster, result, handles = _run(exits(137, "OOMKilled"), _request(), log)
    f = result.failure
    assert f.reason == "OOMKilled" and not f.retryable and result.exit_code == 137
    assert "8Gi limit" in f.message and "runtime.stages.<stage>.memory" in f.message
    name = handles[0]["name"]
    assert not any(d[:2] == ("pod", name) for d in cluster.deleted)
    assert cluster.pods[name]["metadata"]["labels"][LABEL_CHECKED] == "true"  # never reattached to


@pytest.mark.parametrize(("status", "expected"), [
    ({"reason": "Evicted", "message": "The node was low on resource: ephemeral-storage."}, "evicted from node gpu-node-1"),
    ({"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]},
     "preempted by a higher-priority pod"),
])  # fmt: skip
def test_eviction_and_preemption_are_retried(log, status, expected) -> None:
    _, result, _ = _run(exits(143, **status), _request(), log)
    assert result.failure.retryable and expected in result.failure.message
    assert "resumes from the last checkpoint" in result.failure.message


def test_a_user_error_exit_code_is_not_retried(log) -> None:
    _, result, _ = _run(exits(USER_ERROR), _request(), log)
    assert result.exit_code == USER_ERROR and result.failure.reason == "UserError" and not result.failure.retryable
    _, crashed, _ = _run(exits(1), _request(), log)
    assert crashed.exit_code == 1 and crashed.failure.retryable and "exited 1 on node gpu-node-1" in crashed.failure.message


def test_a_restarted_worker_reattaches_instead_of_starting_a_duplicate(log) -> None:
    target = PodTarget(K8S, "spec.yaml")
    earlier = _request(attempt="a0")

    def before(cluster: FakeCluster) -> None:
        # an earlier attempt's pod that failed (kept) and its retry's pod, still running
        failed = stage_pod(earlier, target, "perl-assistant-cpt-run-1-old00")
        cluster.create_pod(failed)
        running = stage_pod(earlier, target, "perl-assistant-cpt-run-1-live0")
        cluster.create_pod(running)
        time.sleep(0.3)

    def kubelet(cluster: FakeCluster, name: str) -> None:
        if name.endswith("old00"):
            exits(1)(cluster, name)
        else:
            cluster.schedule(name)
            cluster.start(name)
            cluster.log(name, "resumed from checkpoint-40")
            time.sleep(0.5)
            cluster.log(name, "done")
            cluster.exit(name, 0)

    cluster, result, handles = _run(kubelet, _request(attempt="a1"), log, before=before)
    assert handles[0]["reattached"] and handles[0]["name"] == "perl-assistant-cpt-run-1-live0"
    assert result.exit_code == 0 and result.attempt_id == "a0"  # the attempt that pod runs
    assert [c for c in cluster.created if c[0] == "pod"] == [("pod", "perl-assistant-cpt-run-1-old00"),
                                                              ("pod", "perl-assistant-cpt-run-1-live0")]  # fmt: skip
    assert cluster.pods["perl-assistant-cpt-run-1-old00"]["metadata"]["labels"][LABEL_CHECKED] == "true"
    assert "done" in log[1].lines and "reattaching to pod perl-assistant-cpt-run-1-live0" in log[1].text()


def works_until_deleted(cluster: FakeCluster, name: str) -> None:
    cluster.schedule(name)
    cluster.start(name)
    while cluster.alive(name):
        cluster.log(name, "working")
        time.sleep(0.1)


def _killed_while_running(request: LaunchRequest, log, k8s: KubernetesConfig = K8S) -> tuple[FakeCluster, object, str]:
    """Launches in a thread, kills once the container has logged, waits for launch to return."""
    cluster = FakeCluster(works_until_deleted)
    CLUSTERS.append(cluster)
    handles: list[dict] = []
    out: dict = {}
    with FakeApiServer(cluster) as server:
        launcher = _launcher(server, k8s)
        thread = threading.Thread(target=lambda: out.setdefault("r", launcher.launch(request, log[0], handles.append)))
        thread.start()
        deadline = time.monotonic() + 10
        while "working" not in log[1].lines and time.monotonic() < deadline:
            time.sleep(0.05)
        launcher.kill()
        thread.join(20)
    assert not thread.is_alive()
    return cluster, out["r"], handles[0]["name"]


def test_a_task_kill_deletes_the_pod(log) -> None:
    cluster, result, name = _killed_while_running(_request(), log)
    assert ("pod", name, {"gracePeriodSeconds": ["5"]}) in cluster.deleted and name not in cluster.pods
    assert result.failure.reason == "Killed"


# -- multi-node jobs -------------------------------------------------------------------------------


def _rank(pod: dict) -> int:
    return int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])


def rank_runs(cluster: FakeCluster, name: str) -> None:
    rank = _rank(cluster.pods[name])
    cluster.schedule(name, f"gpu-node-{rank}")
    cluster.start(name)
    time.sleep(0.2)
    cluster.log(name, f"rank {rank}: loss 2.31")
    time.sleep(0.1)
    cluster.exit(name, 0)


def test_a_multi_node_job_runs_every_rank_and_is_cleaned_up(log) -> None:
    cluster, result, handles = _run(rank_runs, _request(nodes=2, gpus=8), log)
    assert result.exit_code == 0, result.failure
    job = handles[0]["name"]
    assert handles[0]["kind"] == "job" and result.handle == f"job/domainllm/{job}"
    assert "rank 0: loss 2.31" in log[1].lines and "rank 1: loss 2.31" not in log[1].lines  # rank 0 is followed
    assert ("job", job) in cluster.created and ("service", job) in cluster.created
    assert ("job", job, {"gracePeriodSeconds": ["0"], "propagationPolicy": ["Foreground"]}) in cluster.deleted
    assert not cluster.pods and not cluster.services  # pods with the job, the Service by its owner reference


def test_a_failed_rank_fails_the_whole_job_and_says_which(log) -> None:
    def rank1_dies(cluster: FakeCluster, name: str) -> None:
        rank = _rank(cluster.pods[name])
        cluster.schedule(name, f"gpu-node-{rank}")
        cluster.start(name)
        if rank == 1:
            cluster.log(name, "RuntimeError: CUDA error: an illegal memory access was encountered")
            time.sleep(0.4)
            cluster.exit(name, 1)
        else:
            while cluster.alive(name) and cluster.pods[name]["status"]["phase"] == "Running":
                cluster.log(name, "rank 0 waiting in all-reduce")
                time.sleep(0.1)

    cluster, result, handles = _run(rank1_dies, _request(nodes=2, gpus=8), log)
    f = result.failure
    assert f.retryable and f.exit_code == 1 and "rank 1 failed first" in f.message and "stopped every other rank" in f.message
    assert "CUDA error: an illegal memory access" in log[1].text()  # the failed rank's log tail, in the task log
    job = handles[0]["name"]
    assert job not in cluster.jobs or cluster.jobs[job]["metadata"]["labels"].get(LABEL_CHECKED) == "true"


def test_a_half_schedulable_job_fails_after_the_timeout_and_is_deleted(log) -> None:
    def one_node_short(cluster: FakeCluster, name: str) -> None:
        if _rank(cluster.pods[name]) == 0:
            cluster.schedule(name)
            cluster.start(name)
        else:
            cluster.unschedulable(name, "0/4 nodes are available: 1 Insufficient rdma/rdma_shared_device_a, 3 Insufficient nvidia.com/gpu.")

    cluster, result, handles = _run(one_node_short, _request(nodes=2, gpus=8), log)
    f = result.failure
    assert f.reason == "Unschedulable" and "nvidia.com/gpu (requested 8 per pod)" in f.message
    assert "rdma/rdma_shared_device_a" in f.message
    assert handles[0]["name"] not in cluster.jobs and not cluster.pods


def test_a_task_kill_deletes_the_job_and_its_service(log) -> None:
    cluster, result, job = _killed_while_running(_request(nodes=2), log)
    assert ("job", job, {"gracePeriodSeconds": ["5"], "propagationPolicy": ["Foreground"]}) in cluster.deleted
    assert job not in cluster.jobs and not cluster.pods and job not in cluster.services and result.failure.reason == "Killed"


def test_a_volcano_gang_gets_its_pod_group_with_the_job(log) -> None:
    volcano = K8S.model_copy(update={"training": TrainingJobs(gang="volcano", queue="research")})
    cluster, result, handles = _run(rank_runs, _request(nodes=2), log, k8s=volcano)
    assert result.exit_code == 0
    assert ("podgroups", handles[0]["name"]) in cluster.created and not cluster.custom  # gone with its Job


def _admitted_after(delay: float):
    """A `before` for _run: Kueue admits the job `delay` seconds after it is created."""

    def before(cluster: FakeCluster) -> None:
        def kueue() -> None:
            while not cluster.jobs:
                time.sleep(0.02)
            time.sleep(delay)
            assert not cluster.pods  # a suspended job runs nothing
            cluster.admit(next(iter(cluster.jobs)))

        threading.Thread(target=kueue, daemon=True).start()

    return before


def test_a_kueue_job_waits_suspended_until_it_is_admitted(log) -> None:
    kueue = K8S.model_copy(update={"training": TrainingJobs(gang="kueue", queue="gpu-training")})
    # longer in the queue than schedule_timeout_s: that clock starts at the admission
    cluster, result, handles = _run(rank_runs, _request(nodes=2), log, k8s=kueue, before=_admitted_after(2.0))
    assert result.exit_code == 0, result.failure
    assert f"job {handles[0]['name']} is suspended, waiting for admission (Kueue queue gpu-training)" in log[1].lines


def test_a_kueue_job_not_admitted_in_time_fails_retryably_and_is_deleted(log) -> None:
    kueue = K8S.model_copy(update={"training": TrainingJobs(gang="kueue", queue="gpu-training", admission_timeout_s=1)})
    cluster, result, handles = _run(rank_runs, _request(nodes=2), log, k8s=kueue)
    f = result.failure
    assert f.reason == "AdmissionTimeout" and f.retryable and "not admitted by Kueue queue gpu-training within 1s" in f.message
    assert handles[0]["name"] not in cluster.jobs and not cluster.pods and not cluster.services


def test_the_launcher_needs_exactly_the_rbac_it_is_granted(log) -> None:
    """Replays the scenarios that make every kind of call (JobSets' and TrainJobs' too:
    test_kubernetes_job_apis.py) and compares the calls with the rules the deploy grants
    (`domainllm.k8s.rbac`): none missing, none unused."""
    from tests.operators.launchers import test_kubernetes_job_apis as job_apis

    CLUSTERS.clear()
    test_a_restarted_worker_reattaches_instead_of_starting_a_duplicate(log)
    test_oomkilled_is_not_retried_and_the_pod_is_kept_for_inspection(log)
    test_a_task_kill_deletes_the_pod(log)
    test_a_failed_rank_fails_the_whole_job_and_says_which(log)
    test_a_volcano_gang_gets_its_pod_group_with_the_job(log)
    test_a_task_kill_deletes_the_job_and_its_service(log)
    for backend, noun in (("jobset", "JobSet"), ("trainjob", "TrainJob")):  # create, list, get, patch (kept)
        job_apis.test_a_failed_rank_fails_the_whole_job_says_which_and_shows_its_log(log, backend, noun)
        job_apis.test_a_task_kill_deletes_the_object_and_everything_it_owns(log, backend)  # delete
    asked = set().union(*(c.authorized for c in CLUSTERS))
    granted = {(group, resource, verb) for (group, resource), verbs in LAUNCHER_RULES.items() for verb in verbs}
    assert asked == granted, {"not granted": asked - granted, "granted, never used": granted - asked}


def test_transient_api_errors_while_polling_are_retried_not_fatal(log, monkeypatch) -> None:
    """The API server answers 503, 429, 500 and drops a connection while the job runs (an
    upgrade): the launcher retries its reads with backoff and the training job runs to its
    end instead of being deleted."""
    from domainllm_operators.launchers import kubernetes as launcher

    monkeypatch.setattr(launcher, "BACKOFF_S", 0.05)

    def flaky(cluster: FakeCluster) -> None:
        job = r"/apis/batch/v1/namespaces/domainllm/jobs/[^/]+"
        for status, times in ((503, 2), (429, 1), (0, 1), (500, 1)):
            cluster.fault("GET", job, status, times)
        cluster.fault("GET", r"/api/v1/namespaces/domainllm/pods", 503, 1)  # the first look for a live attempt too

    cluster, result, handles = _run(rank_runs, _request(nodes=2, gpus=8), log, before=flaky)
    assert result.exit_code == 0, result.failure
    assert sorted(s for _, _, s in cluster.faulted) == [0, 429, 500, 503, 503, 503]
    assert ("job", handles[0]["name"], {"gracePeriodSeconds": ["0"], "propagationPolicy": ["Foreground"]}) in cluster.deleted  # after success


def slow_lines(cluster: FakeCluster, name: str) -> None:
    cluster.schedule(name)
    cluster.start(name)
    for i in range(8):
        cluster.log(name, f"INFO domainllm.stages: step {i}")
        time.sleep(0.4)
    cluster.exit(name, 0)


def test_a_log_stream_cut_mid_job_is_resumed_and_loses_no_line(log) -> None:
    """The followed log (the one long-lived stream, a watch in all but name) is cut twice while
    the container runs, as a load balancer or an API server restart does: the launcher
    reconnects from the last line's time, and every line reaches the task log once, in order
    (the API resumes by whole seconds and sends the last second again: those are dropped);
    the verdict is the job's."""
    cluster, result, _ = _run(slow_lines, _request(), log, before=lambda c: setattr(c, "log_cuts", 2))
    assert result.exit_code == 0 and result.failure is None
    assert cluster.log_cuts == 0  # both cuts happened
    follows = [path for method, path in cluster.requests if method == "GET" and path.endswith("/log")]
    assert len(follows) >= 3  # the first stream and one per cut
    steps = [line for line in log[1].lines if line.startswith("INFO domainllm.stages: step")]
    assert steps == [f"INFO domainllm.stages: step {i}" for i in range(8)]
    assert any("log read interrupted" in line for line in log[1].lines)  # the cut is in the task log


def test_an_api_that_stays_down_ends_the_attempt_after_the_retries(log, monkeypatch) -> None:
    from kubernetes.client.exceptions import ApiException

    from domainllm_operators.launchers import kubernetes as launcher

    monkeypatch.setattr(launcher, "BACKOFF_S", 0.01)
    seen = {}

    def down(cluster: FakeCluster) -> None:
        seen["cluster"] = cluster
        cluster.fault("GET", r"/api/v1/namespaces/domainllm/pods/[^/]+", 503, 1000)

    with pytest.raises(ApiException) as exc:
        _run(succeeds, _request(), log, before=down)
    assert exc.value.status == 503
    reads = [r for r in seen["cluster"].faulted if r[0] == "GET"]
    assert len(reads) == launcher.READ_RETRIES + 1  # every retry spent before giving up
