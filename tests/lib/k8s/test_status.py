"""Reading what the API says about a pod or job into a verdict (the launcher's tests play the
same answers over HTTP; these pin the messages and the retry decisions)."""

from __future__ import annotations

from domainllm.k8s.status import job_failure, job_finished, missing_resources, pod_state, rank_name


def _pod(phase: str = "Pending", *, conditions=(), state=None, reason=None, message=None, gpus=8, name="p") -> dict:
    status = {"phase": phase, "conditions": list(conditions)}
    if state is not None:
        status["containerStatuses"] = [{"name": "base", "state": state}]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {"metadata": {"name": name, "labels": {"domainllm/attempt-id": "a1"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "base", "resources": {
                "requests": {"nvidia.com/gpu": gpus, "memory": "8Gi"}, "limits": {"nvidia.com/gpu": gpus, "memory": "8Gi"}}}]},
            "status": status}  # fmt: skip


def test_pending_pods() -> None:
    assert pod_state(_pod()).phase == "pending" and not pod_state(_pod()).scheduled
    unsched = pod_state(_pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                          "message": "0/3 nodes are available: 2 Insufficient nvidia.com/gpu, 1 node(s) had "
                                                     "untolerated taint {dedicated: infra}."}]))  # fmt: skip
    assert unsched.failure is None  # may still resolve (autoscaler): the launcher's timeout decides
    assert "missing: nvidia.com/gpu (requested 8 per pod)" in unsched.waiting and "taints" in unsched.waiting
    affinity = pod_state(_pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                           "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."}]))
    assert "node_selector/affinity" in affinity.waiting
    scheduled = pod_state(_pod(conditions=[{"type": "PodScheduled", "status": "True"}], state={"waiting": {"reason": "ContainerCreating"}}))
    assert scheduled.scheduled and "scheduled on n1" in scheduled.waiting


def test_image_and_config_errors_are_final_unless_transient() -> None:
    pull = pod_state(_pod(state={"waiting": {"reason": "ImagePullBackOff", "message": "manifest unknown"}}))
    assert pull.failure.reason == "ImagePull" and not pull.failure.retryable
    flaky = pod_state(_pod(state={"waiting": {"reason": "ErrImagePull", "message": "503 Service Unavailable"}}))
    assert flaky.failure is None and "cannot pull" in flaky.waiting
    invalid = pod_state(_pod(state={"waiting": {"reason": "InvalidImageName", "message": "timeout"}}))
    assert invalid.failure.reason == "ImagePull"  # a malformed name never becomes valid
    secret = pod_state(_pod(state={"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'}}))
    assert secret.failure.reason == "Config" and 'secret "s3" not found' in secret.failure.message


def test_ends() -> None:
    assert pod_state(_pod("Succeeded")).phase == "succeeded"
    oom = pod_state(_pod("Failed", state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})).failure
    assert (oom.reason, oom.retryable, oom.exit_code) == ("OOMKilled", False, 137) and "8Gi limit" in oom.message
    evicted = pod_state(_pod("Failed", reason="Evicted", message="The node was low on resource: memory.")).failure
    assert evicted.reason == "Evicted" and evicted.retryable and "low on resource: memory" in evicted.message
    drained = pod_state(_pod("Failed", state={"terminated": {"exitCode": 143}},
                             conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}])).failure
    assert drained.reason == "Preempted" and drained.retryable and "node drained" in drained.message
    user = pod_state(_pod("Failed", state={"terminated": {"exitCode": 2, "reason": "Error"}})).failure
    assert user.reason == "UserError" and not user.retryable
    segv = pod_state(_pod("Failed", state={"terminated": {"exitCode": 139, "reason": "Error"}})).failure
    assert segv.retryable and "killed by signal 11" in segv.message
    deleting = _pod("Running", state={"running": {}})
    deleting["metadata"]["deletionTimestamp"] = "2026-11-26T00:00:00Z"
    assert pod_state(deleting).phase == "running" and "being deleted" in pod_state(deleting).waiting


def test_a_failed_job_names_the_rank_that_failed_first() -> None:
    job = {"metadata": {"name": "j"}, "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    assert job_finished(job) == "failed" and job_finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == "succeeded"
    assert job_finished({"status": {"conditions": [{"type": "Failed", "status": "False"}]}}) is None
    at = "2026-11-26T10:00:00Z"
    stopped = _pod("Failed", name="j-0", state={"terminated": {"exitCode": 143, "finishedAt": at}})
    crashed = _pod("Failed", name="j-1", state={"terminated": {"exitCode": 1, "finishedAt": at}})
    for i, pod in enumerate((stopped, crashed)):
        pod["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": str(i)}
    failure = job_failure(job, [stopped, crashed])
    assert failure.exit_code == 1 and "rank 1 failed first" in failure.message and failure.retryable
    assert "BackoffLimitExceeded" in job_failure(job, []).message


def test_a_jobset_or_trainjob_ends_on_its_own_conditions_and_names_its_part() -> None:
    """A JobSet succeeds with `Completed`, a TrainJob (as a Job) with `Complete`; a rank OOM-killed
    (137, as a stopped rank) at the same second as the SIGTERM of another still failed first; a
    Trainer runtime's initializer pod is named as such, not as a rank."""
    completed = {"status": {"conditions": [{"type": "Completed", "status": "True", "reason": "AllJobsCompleted"}]}}
    assert job_finished(completed, "Completed") == "succeeded" and job_finished(completed) is None
    jobset = {"metadata": {"name": "js"}, "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "ReachedMaxRestarts"}]}}
    assert job_finished(jobset, "Completed") == "failed"
    at = "2026-11-26T10:00:00Z"
    stopped = _pod("Failed", name="js-node-0-0", state={"terminated": {"exitCode": 143, "finishedAt": at}})
    oom = _pod("Failed", name="js-node-0-1", state={"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": at}})
    init = _pod("Failed", name="js-dataset-initializer-0-0", state={"terminated": {"exitCode": 1, "finishedAt": "2026-11-26T11:00:00Z"}})
    for i, pod in enumerate((stopped, oom, init)):
        pod["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": str(i % 2)}
        pod["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"] = "dataset-initializer" if pod is init else "node"
    failure = job_failure(jobset, [stopped, oom, init], what="JobSet")
    assert failure.reason == "OOMKilled" and not failure.retryable
    assert failure.message.startswith("JobSet js: rank 1 failed first: pod js-node-0-1 ran out of memory")
    assert "the JobSet stopped every other rank (3 pods)" in failure.message
    assert rank_name(init) == "dataset-initializer pod 0" and rank_name(stopped) == "rank 0"
    assert "JobSet js failed: ReachedMaxRestarts" in job_failure(jobset, [], what="JobSet").message


def test_missing_resources_are_parsed() -> None:
    assert missing_resources("0/4 nodes are available: 1 Insufficient cpu, 3 Insufficient rdma/rdma_shared_device_a.") == [
        "cpu", "rdma/rdma_shared_device_a"]
