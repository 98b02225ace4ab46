"""KubernetesStageTrigger against the fake API server (tests/operators/launchers/fake_k8s.py),
through a real Airflow connection and the provider's hook: it waits for a pod or job to end,
judges a start that cannot happen as the launcher does (unschedulable, image pull, admission
deadline), waits out 429/5xx/dropped connections however long they last without touching what
runs, comes back from its serialized kwargs (a restarted triggerer), ends at the task's
deadline, and deletes what runs only when a person stopped the task."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from typing import Any

import pytest

from domainllm.k8s.pod import PodTarget
from domainllm.k8s.rbac import LAUNCHER_RULES
from domainllm.launch import LaunchRequest
from domainllm.spec.kubernetes import KubernetesConfig, TrainingJobs
from domainllm_operators import triggers as triggers_module
from domainllm_operators.launchers import kubernetes as launcher_module
from domainllm_operators.launchers.kubernetes import KubernetesLauncher
from domainllm_operators.triggers import KubernetesStageTrigger
from tests.operators.conftest import CONNECTION
from tests.operators.launchers.fake_k8s import FakeCluster, now, rbac_request
from tests.operators.launchers.test_kubernetes import (
    K8S,
    _rank,
    _request,
    exits,
    rank_runs,
    succeeds,
    works_until_deleted,
)

K8S_CONN = K8S.model_copy(update={"connection": CONNECTION})
KUEUE = K8S_CONN.model_copy(update={"training": TrainingJobs(gang="kueue", queue="gpu-training", admission_timeout_s=30)})
_log_to = logging.getLogger("test-triggers")


@pytest.fixture(autouse=True)
def no_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The triggers here run alone, not in Airflow: no scheduler race to wait out."""
    monkeypatch.setattr(triggers_module, "MIN_DEFERRAL_S", 0.0)


def _defer(request: LaunchRequest, k8s: KubernetesConfig = K8S_CONN,
           deadline: float | None = None) -> tuple[KubernetesLauncher, dict[str, Any], KubernetesStageTrigger]:  # fmt: skip
    """What StageOperator.execute does before it defers: start the pod or job, make the trigger."""
    launcher = KubernetesLauncher(PodTarget(k8s, "spec.yaml", "mlflow-parent-1"))
    handle = launcher.start(request, _log_to)
    return launcher, handle, launcher.trigger(handle, request, deadline)


def _events(trigger: KubernetesStageTrigger, timeout: float = 20, during=None) -> list[dict[str, Any]]:
    """Runs the trigger as the triggerer does (its events, then cleanup); `during()` runs in a
    thread meanwhile (the cluster's side of the story)."""

    async def main() -> list[dict[str, Any]]:
        side = asyncio.create_task(asyncio.to_thread(during)) if during else None
        events = []
        try:
            async with asyncio.timeout(timeout):
                async for event in trigger.run():
                    events.append(event.payload)
        finally:
            await trigger.cleanup()
            if side is not None:
                await side
        return events

    return asyncio.run(main())


async def _first(trigger: KubernetesStageTrigger) -> Any:
    return await anext(trigger.run())


def _event(trigger: KubernetesStageTrigger, **kwargs) -> dict[str, Any]:
    events = _events(trigger, **kwargs)
    assert len(events) == 1, events
    return events[0]


def _log(capfd: pytest.CaptureFixture[str]) -> str:
    """What the trigger logged (Airflow's structlog writes it to the process's output)."""
    out, err = capfd.readouterr()
    return out + err


def test_a_pod_that_runs_to_its_end_and_kwargs_that_are_plain_json(fake_cluster) -> None:
    cluster = fake_cluster(succeeds)
    _, handle, trigger = _defer(_request())
    classpath, kwargs = trigger.serialize()
    assert classpath == "domainllm_operators.triggers.KubernetesStageTrigger"
    text = json.dumps(kwargs)  # JSON as it is stored; no secret (the kubeconfig's token is not in it)
    assert "not-a-secret" not in text and "token" not in text and kwargs["connection"] == CONNECTION
    again = KubernetesStageTrigger(**json.loads(text))
    event = _event(again)
    assert event["status"] == "ended" and event["handle"] == handle and event["since"] == kwargs["since"]
    assert handle["name"] in cluster.pods and not cluster.deleted  # the trigger only watches; the resumed task cleans up


def test_a_pod_the_cluster_cannot_place_is_judged_as_the_launcher_judges_it(fake_cluster) -> None:
    def no_gpus(cluster: FakeCluster, name: str) -> None:
        cluster.unschedulable(name, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")

    fake_cluster(no_gpus)
    t0 = time.monotonic()
    _, _, trigger = _defer(_request(gpus=8))
    event = _event(trigger)
    assert 1.5 <= time.monotonic() - t0 < 10
    failure = event["failure"]
    assert event["status"] == "not_started" and failure["reason"] == "Unschedulable" and failure["retryable"]
    assert "missing: nvidia.com/gpu (requested 8 per pod)" in failure["message"]


def test_an_image_that_cannot_be_pulled_ends_the_wait_at_once(fake_cluster) -> None:
    def bad_image(cluster: FakeCluster, name: str) -> None:
        cluster.schedule(name)
        cluster.waiting(name, "ErrImagePull", "manifest unknown")

    fake_cluster(bad_image)
    _, _, trigger = _defer(_request())
    event = _event(trigger, timeout=5)
    assert event["failure"]["reason"] == "ImagePull" and not event["failure"]["retryable"]


def test_a_kueue_job_waits_suspended_until_it_is_admitted(fake_cluster, capfd) -> None:
    cluster = fake_cluster(rank_runs)
    _, handle, trigger = _defer(_request(nodes=2, gpus=8), KUEUE)
    job = handle["name"]
    assert cluster.jobs[job]["spec"]["suspend"] and not cluster.pods
    assert cluster.jobs[job]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-training"

    def kueue() -> None:
        time.sleep(1.0)
        assert not cluster.pods  # nothing runs while it is suspended
        cluster.admit(job)

    event = _event(trigger, during=kueue)
    assert event["status"] == "ended" and "Complete" in str(cluster.jobs[job]["status"]["conditions"])
    log = _log(capfd)
    assert f"job {job} is suspended, waiting for admission (Kueue queue gpu-training)" in log
    assert f"job {job}: all 2 ranks started" in log


def test_a_job_not_admitted_by_its_deadline_fails_retryably_and_is_deleted(fake_cluster) -> None:
    cluster = fake_cluster(rank_runs)
    k8s = KUEUE.model_copy(update={"training": KUEUE.training.model_copy(update={"admission_timeout_s": 2.5})})
    t0 = time.monotonic()
    launcher, handle, trigger = _defer(_request(nodes=2, gpus=8), k8s)
    event = _event(trigger)
    # the clock is the job's Suspended condition, in whole seconds as the API writes it: up to one second early
    assert 1.4 <= time.monotonic() - t0 < 12 and event["status"] == "not_started"
    failure = event["failure"]
    assert failure["reason"] == "AdmissionTimeout" and failure["retryable"]
    assert "not admitted by Kueue queue gpu-training within 2.5s" in failure["message"]
    assert "admission_timeout_s" in failure["message"]
    result = launcher.finish(handle, event, _log_to, 2.0)  # the resumed task
    assert result.failure.reason == "AdmissionTimeout" and result.exit_code == -1
    assert handle["name"] not in cluster.jobs and not cluster.services  # the suspended job is deleted


@pytest.mark.parametrize(("status", "urllib3_tries"), [(503, 1), (429, 4), (0, 4), (500, 1)], ids=["503", "429", "dropped", "500"])
def test_an_api_that_is_down_longer_than_the_retries_never_ends_the_wait(fake_cluster, monkeypatch, capfd, status: int,
                                                                          urllib3_tries: int) -> None:  # fmt: skip
    """An API server down for three times `_Api`'s retries (7 failed reads each; each read is
    up to 4 requests where the client's urllib3 retries by itself: a 429's Retry-After, a
    dropped connection): the trigger logs it and keeps waiting, the pod runs on, and its end
    is seen once the API is back."""
    monkeypatch.setattr(launcher_module, "BACKOFF_S", 0.01)
    release = threading.Event()

    def held(cluster: FakeCluster, name: str) -> None:
        cluster.schedule(name)
        cluster.start(name)
        release.wait(30)
        cluster.exit(name, 0)

    cluster = fake_cluster(held)
    _, handle, trigger = _defer(_request())
    times = urllib3_tries * 3 * (launcher_module.READ_RETRIES + 1)

    def outage() -> None:
        time.sleep(0.5)  # running by now
        cluster.fault("GET", r"/api/v1/namespaces/domainllm/pods/[^/]+", status, times)
        deadline = time.monotonic() + 30
        while sum(1 for _, _, s in cluster.faulted if s == status) < times and time.monotonic() < deadline:
            time.sleep(0.05)
        release.set()

    event = _event(trigger, during=outage, timeout=40)
    assert event["status"] == "ended"
    assert sum(1 for _, _, s in cluster.faulted if s == status) == times  # every bad answer was given
    assert not cluster.deleted and handle["name"] in cluster.pods
    assert f"still waiting, pod {handle['name']} is left alone" in _log(capfd)


def test_a_restarted_triggerer_picks_the_wait_up_from_the_kwargs(fake_cluster) -> None:
    """The triggerer stops (its trigger is cancelled: cleanup runs, on_kill does not) while the
    training runs; a new trigger made from the stored kwargs sees it to its end."""
    release = threading.Event()

    def held(cluster: FakeCluster, name: str) -> None:
        cluster.schedule(name)
        cluster.start(name)
        release.wait(30)
        cluster.exit(name, 1)

    cluster = fake_cluster(held)
    _, handle, trigger = _defer(_request())
    stored = json.dumps(trigger.serialize()[1])

    async def shut_down() -> None:
        task = asyncio.create_task(_first(trigger))
        await asyncio.sleep(1.0)
        task.cancel()  # what a triggerer's shutdown does
        with pytest.raises(asyncio.CancelledError):
            await task
        await trigger.cleanup()

    asyncio.run(shut_down())
    assert handle["name"] in cluster.pods and not cluster.deleted
    event = _event(KubernetesStageTrigger(**json.loads(stored)), during=lambda: (time.sleep(0.3), release.set()))
    assert event["status"] == "ended" and event["handle"] == handle


def test_a_connection_that_cannot_be_read_yet_is_waited_for_then_given_up(fake_cluster, monkeypatch, capfd) -> None:
    """The Airflow connection is unreadable for a while (Airflow's API server restarting): the
    trigger waits for it, and gives up only after CONNECT_GRACE_S."""
    from domainllm_operators import triggers

    fake_cluster(succeeds)
    _, _, trigger = _defer(_request())
    stored = json.dumps(trigger.serialize()[1])
    conn = os.environ.pop(f"AIRFLOW_CONN_{CONNECTION.upper()}")

    def back() -> None:
        time.sleep(0.5)
        os.environ[f"AIRFLOW_CONN_{CONNECTION.upper()}"] = conn

    assert _event(trigger, during=back)["status"] == "ended"
    assert "no client for the Kubernetes API yet" in _log(capfd)
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONNECTION.upper()}")
    monkeypatch.setattr(triggers, "CONNECT_GRACE_S", 0.5)
    event = _event(KubernetesStageTrigger(**json.loads(stored)))
    assert event["status"] == "error" and "no client for the Kubernetes API for 0.5s" in event["message"]
    assert CONNECTION in event["message"]  # which connection it could not read


def test_a_job_suspended_again_waits_for_its_admission_again(fake_cluster, capfd) -> None:
    """Kueue preempts a running job (suspends it: its pods go) and admits it again later."""
    runs: dict[int, int] = {}

    def second_time_lucky(cluster: FakeCluster, name: str) -> None:
        rank = _rank(cluster.pods[name])
        runs[rank] = runs.get(rank, 0) + 1
        if runs[rank] == 1:
            works_until_deleted(cluster, name)
        else:
            rank_runs(cluster, name)

    cluster = fake_cluster(second_time_lucky)
    _, handle, trigger = _defer(_request(nodes=2), KUEUE)
    job = handle["name"]

    def kueue() -> None:
        time.sleep(0.3)
        cluster.admit(job)
        time.sleep(1.0)  # both ranks run
        with cluster.changed:  # preempted: Kueue suspends it, the Job controller removes its pods (not failures)
            cluster.jobs[job]["spec"]["suspend"] = True
            cluster.jobs[job]["status"]["conditions"] = [{"type": "Suspended", "status": "True", "reason": "JobSuspended",
                                                          "lastTransitionTime": now()}]  # fmt: skip
            cluster.pods.clear()
            cluster.changed.notify_all()
        time.sleep(1.0)
        cluster.admit(job)

    event = _event(trigger, during=kueue)
    assert event["status"] == "ended" and runs == {0: 2, 1: 2}
    assert "Complete" in str(cluster.jobs[job]["status"]["conditions"])
    assert f"job {job} was suspended again (preempted by Kueue?)" in _log(capfd)


def test_a_pod_deleted_behind_the_tasks_back_is_gone(fake_cluster) -> None:
    cluster = fake_cluster(works_until_deleted)
    _, handle, trigger = _defer(_request())

    def someone() -> None:
        time.sleep(0.5)
        cluster.delete_pod(handle["name"], {})

    assert _event(trigger, during=someone)["status"] == "gone"


def test_the_tasks_deadline_ends_the_wait_and_the_resumed_task_deletes_the_pod(fake_cluster) -> None:
    cluster = fake_cluster(works_until_deleted)
    launcher, handle, trigger = _defer(_request(), deadline=time.time() + 1.0)
    event = _event(trigger)
    assert event["status"] == "timeout" and cluster.alive(handle["name"])
    result = launcher.finish(handle, event, _log_to, 1.0)
    assert result.failure.reason == "Timeout" and handle["name"] not in cluster.pods


def test_an_api_that_refuses_us_is_an_error_and_what_nobody_can_watch_is_deleted(fake_cluster) -> None:
    cluster = fake_cluster(works_until_deleted)
    launcher, handle, trigger = _defer(_request())
    cluster.fault("GET", r"/api/v1/namespaces/domainllm/pods/[^/]+", 403, 1)
    event = _event(trigger)
    assert event["status"] == "error" and event["message"].startswith("HTTP 403") and event["handle"] == handle
    result = launcher.finish(handle, event, _log_to, 1.0)
    assert result.failure.reason == "WatchFailed" and not result.failure.retryable
    assert "RBAC" in result.failure.message and handle["name"] not in cluster.pods


def test_expired_credentials_reconnect(fake_cluster) -> None:
    cluster = fake_cluster(succeeds)
    _, _, trigger = _defer(_request())
    cluster.fault("GET", r"/api/v1/namespaces/domainllm/pods/[^/]+", 401, 2)
    assert _event(trigger)["status"] == "ended" and [s for _, _, s in cluster.faulted] == [401, 401]


@pytest.mark.parametrize(("state", "deleted"), [("failed", True), ("success", True), (None, True), ("deferred", False),
                                                 ("unreadable", False)])  # fmt: skip
def test_on_kill_deletes_only_when_a_person_stopped_the_task(fake_cluster, monkeypatch, state, deleted) -> None:
    """Airflow 3.3 calls on_kill when a person marks a deferred task failed or success, or
    clears it (its state is then failed, success or none), but also when the trigger moved to
    another triggerer (still deferred). The state comes from the triggerer's supervisor (here a
    stand-in; tests/e2e/test_deferral.py marks a real task failed)."""
    cluster = fake_cluster(works_until_deleted)
    _, handle, trigger = _defer(_request())
    time.sleep(0.3)

    async def task_state() -> str | None:
        if state == "unreadable":
            raise ConnectionError("supervisor gone")
        return state

    monkeypatch.setattr(trigger, "_task_state", task_state)
    asyncio.run(trigger.on_kill())
    assert (("pod", handle["name"], {"gracePeriodSeconds": ["5"]}) in cluster.deleted) is deleted
    assert cluster.alive(handle["name"]) is not deleted


def test_a_failed_rank_ends_the_wait_once_the_job_says_so(fake_cluster) -> None:
    def rank1_dies(cluster: FakeCluster, name: str) -> None:
        if _rank(cluster.pods[name]) == 1:
            exits(1)(cluster, name)
        else:
            works_until_deleted(cluster, name)

    cluster = fake_cluster(rank1_dies)
    _, handle, trigger = _defer(_request(nodes=2, gpus=8))
    assert _event(trigger)["status"] == "ended"
    assert "Failed" in str(cluster.jobs[handle["name"]]["status"]["conditions"])


def test_the_trigger_needs_no_rbac_beyond_the_launchers(fake_cluster) -> None:
    """Every call a trigger makes (reads, events, on_kill's deletes) is one the launcher's Role grants."""
    cluster = fake_cluster(works_until_deleted)
    _, handle, trigger = _defer(_request(nodes=2))
    launched = len(cluster.requests)

    async def watch_then_kill() -> None:
        task = asyncio.create_task(_first(trigger))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def stopped() -> str:
            return "failed"

        trigger._task_state = stopped  # type: ignore[method-assign]
        await trigger.on_kill()
        await trigger.cleanup()

    asyncio.run(watch_then_kill())
    used = {rbac_request(method, path, {}) for method, path in cluster.requests[launched:]}
    granted = {(group, resource, verb) for (group, resource), verbs in LAUNCHER_RULES.items() for verb in verbs}
    assert used <= granted, used - granted
    assert {("batch", "jobs", "get"), ("", "pods", "list"), ("", "events", "list"), ("batch", "jobs", "delete"),
            ("", "services", "delete")} <= used  # fmt: skip
    assert handle["name"] not in cluster.jobs


def test_no_event_sooner_than_the_hold_after_deferring(fake_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod that ends at once is reported MIN_DEFERRAL_S after the task deferred, never sooner
    (Airflow 3.3 fails a resumed task whose deferring attempt it has not finished accounting for)."""
    monkeypatch.setattr(triggers_module, "MIN_DEFERRAL_S", 3.0)
    fake_cluster(succeeds)
    _, _, trigger = _defer(_request())
    event = _event(trigger)
    assert event["status"] == "ended" and time.time() - trigger.since >= 3.0


JOBSET_CONN = K8S_CONN.model_copy(update={"training": TrainingJobs(backend="jobset")})
KUEUE_TRAINJOB = K8S_CONN.model_copy(update={"training": TrainingJobs(backend="trainjob", gang="kueue", queue="gpu-training")})


def test_a_jobset_is_waited_for_and_the_resumed_task_reads_which_rank_failed(fake_cluster) -> None:
    """The wait for a JobSet (training.backend: jobset) in the triggerer: its pods by the JobSet's
    label, its end by its Failed condition; the resumed task's verdict names the rank."""

    def rank1_dies(cluster: FakeCluster, name: str) -> None:
        (exits(1) if _rank(cluster.pods[name]) == 1 else works_until_deleted)(cluster, name)

    cluster = fake_cluster(rank1_dies)
    launcher, handle, trigger = _defer(_request(nodes=2, gpus=8), JOBSET_CONN)
    assert handle["kind"] == "jobset" and f"jobsets/{handle['name']}" in cluster.custom
    launched = len(cluster.requests)
    event = _event(KubernetesStageTrigger(**json.loads(json.dumps(trigger.serialize()[1]))))  # a restarted triggerer's
    assert event["status"] == "ended" and event["handle"] == handle
    used = {rbac_request(method, path, {}) for method, path in cluster.requests[launched:]}
    assert ("jobset.x-k8s.io", "jobsets", "get") in used and ("", "pods", "list") in used
    result = launcher.finish(handle, event, _log_to, 2.0)  # the resumed task
    f = result.failure
    assert f.reason == "ExitCode" and f.retryable and f.message.startswith(f"JobSet {handle['name']}: rank 1 failed first")
    assert cluster.custom[f"jobsets/{handle['name']}"]["metadata"]["labels"]["domainllm/checked"] == "true"
    granted = {(group, resource, verb) for (group, resource), verbs in LAUNCHER_RULES.items() for verb in verbs}
    assert {rbac_request(method, path, {}) for method, path in cluster.requests} <= granted


def test_a_kueue_trainjob_waits_suspended_then_runs_to_its_end(fake_cluster, capfd) -> None:
    cluster = fake_cluster(rank_runs)
    launcher, handle, trigger = _defer(_request(nodes=2, gpus=8), KUEUE_TRAINJOB)
    name = handle["name"]
    trainjob = cluster.custom[f"trainjobs/{name}"]
    assert handle["kind"] == "trainjob" and trainjob["spec"]["suspend"] and not cluster.pods
    assert trainjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-training"

    def kueue() -> None:
        time.sleep(1.0)
        assert not cluster.pods  # nothing runs while it is suspended
        cluster.admit(name, "trainjobs")

    event = _event(trigger, during=kueue)
    assert event["status"] == "ended" and "Complete" in str(cluster.custom[f"trainjobs/{name}"]["status"]["conditions"])
    log = _log(capfd)
    assert f"TrainJob {name} is suspended, waiting for admission (Kueue queue gpu-training)" in log
    assert f"TrainJob {name}: all 2 ranks started" in log
    result = launcher.finish(handle, event, _log_to, 2.0)
    assert result.exit_code == 0 and result.failure is None and not cluster.custom and not cluster.pods  # delete_succeeded
