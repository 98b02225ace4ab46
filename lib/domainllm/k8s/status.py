"""What the API says about our pods and jobs, read into one verdict: still pending (and
whether that can still resolve), running, succeeded, or failed with a reason a person can
act on and whether a retry can help. Works on the objects as JSON dicts (camelCase), as the
API server sends them."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from domainllm.k8s.jobs import INDEX_ANNOTATION, NODE_JOB, REPLICATED_JOB_LABEL
from domainllm.launch import USER_ERROR

IMAGE_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
_TRANSIENT = re.compile(r"rate limit|too many requests|timeout|timed out|temporar|unavailable|connection reset|"
                        r"connection refused|TLS handshake|i/o timeout|50[234]", re.I)  # fmt: skip
_INSUFFICIENT = re.compile(r"Insufficient ([\w./-]*\w)")
DISRUPTIONS = {
    "PreemptionByScheduler": "preempted by a higher-priority pod",
    "PreemptionByKubeScheduler": "preempted by a higher-priority pod",
    "EvictionByEvictionAPI": "evicted (node drained)",
    "DeletionByTaintManager": "deleted because its node became unreachable or was tainted",
    "DeletionByPodGC": "deleted because its node is gone",
    "TerminationByKubelet": "stopped by the kubelet (node shutdown or resource pressure)",
}


@dataclass(frozen=True)
class Failure:
    reason: str
    """Short and stable: `Unschedulable`, `ImagePull`, `Config`, `OOMKilled`, `Evicted`,
    `Preempted`, `ExitCode`, `UserError`, `Deleted`, `JobFailed`."""
    message: str
    retryable: bool
    exit_code: int | None = None


@dataclass(frozen=True)
class PodState:
    phase: str
    """`pending`, `running`, `succeeded` or `failed`."""
    failure: Failure | None = None
    waiting: str = ""
    """Why a pending pod is not running yet (for the log and for a timeout's message)."""
    scheduled: bool = False
    """A pending pod that has a node (pulling its image, creating its container)."""
    attempt_id: str | None = None


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return status
    return {}


def _requested(pod: dict[str, Any], resource: str, name: str) -> str | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == name:
            value = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            return None if value is None else str(value)
    return None


def missing_resources(message: str) -> list[str]:
    """Extended or core resources the scheduler reported short (`Insufficient nvidia.com/gpu`)."""
    return sorted(set(_INSUFFICIENT.findall(message)))


def unschedulable_message(pod: dict[str, Any], container: str) -> str:
    """Why the scheduler cannot place the pod, naming what is missing and what we asked for."""
    cond = _conditions(pod).get("PodScheduled", {})
    message = (cond.get("message") or "no node fits").strip()
    parts = [message]
    missing = missing_resources(message)
    if missing:
        asked = ", ".join(f"{r} (requested {_requested(pod, r, container) or '?'} per pod)" for r in missing)
        parts.append(f"missing: {asked}")
    if "node affinity" in message or "node selector" in message:
        parts.append("no node matches the node pool's node_selector/affinity")
    if "untolerated taint" in message:
        parts.append("the nodes that would fit have taints the node pool does not tolerate")
    if "PersistentVolumeClaim" in message:
        parts.append("a volume claim (runtime.kubernetes.home/cache) is not bound")
    return "; ".join(parts)


def pod_state(pod: dict[str, Any], container: str = "base") -> PodState:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    name = meta.get("name", "?")
    attempt = (meta.get("labels") or {}).get("domainllm/attempt-id")
    main = _container(pod, container)
    terminated = (main.get("state") or {}).get("terminated")
    conditions = _conditions(pod)
    if meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        return PodState("running", waiting=f"pod {name} is being deleted", attempt_id=attempt)
    if phase == "Succeeded":
        return PodState("succeeded", attempt_id=attempt)
    if phase == "Failed":
        return PodState("failed", _failed(pod, name, status, terminated, conditions), attempt_id=attempt)
    waiting = (main.get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason", "")
    if reason in IMAGE_ERRORS:
        msg = f"pod {name} cannot pull its image: {reason}: {waiting.get('message', '')}".rstrip(": ")
        transient = bool(_TRANSIENT.search(waiting.get("message", ""))) and reason != "InvalidImageName"
        failure = None if transient else Failure("ImagePull", msg + " (check runtime.images and image_pull_secrets)", False)
        return PodState("pending", failure, waiting=msg, attempt_id=attempt)
    if reason in CONFIG_ERRORS:
        msg = f"pod {name} cannot start its container: {reason}: {waiting.get('message', '')}"
        hint = " (a Secret or ConfigMap it references is missing: runtime.kubernetes.env_from_secrets, secret_env, spec_config_map)"
        return PodState("pending", Failure("Config", msg + hint, False), waiting=msg, attempt_id=attempt)
    if phase == "Running" or (main.get("state") or {}).get("running"):
        return PodState("running", attempt_id=attempt)
    sched = conditions.get("PodScheduled")
    if sched and sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
        return PodState("pending", waiting=f"pod {name} is unschedulable: {unschedulable_message(pod, container)}",
                        attempt_id=attempt)  # fmt: skip
    if sched and sched.get("status") == "True":
        return PodState("pending", waiting=f"pod {name} is scheduled on {pod.get('spec', {}).get('nodeName', '?')}, "
                                           f"starting ({reason or 'ContainerCreating'})", scheduled=True,
                        attempt_id=attempt)  # fmt: skip
    return PodState("pending", waiting=f"pod {name} is waiting to be scheduled", attempt_id=attempt)


def _failed(pod: dict[str, Any], name: str, status: dict[str, Any], terminated: dict[str, Any] | None,
            conditions: dict[str, dict[str, Any]]) -> Failure:  # fmt: skip
    node = (pod.get("spec") or {}).get("nodeName") or "?"
    disruption = conditions.get("DisruptionTarget")
    code = None if not terminated else terminated.get("exitCode")
    if terminated and terminated.get("reason") == "OOMKilled":
        limit = None
        for c in (pod.get("spec") or {}).get("containers") or []:
            limit = limit or ((c.get("resources") or {}).get("limits") or {}).get("memory")
        return Failure("OOMKilled", f"pod {name} ran out of memory (OOMKilled at its {limit or '?'} limit on node {node}): "
                                    f"raise runtime.stages.<stage>.memory, or lower the batch size", False, code)  # fmt: skip
    if status.get("reason") == "Evicted":
        return Failure("Evicted", f"pod {name} was evicted from node {node}: {status.get('message', '')}".rstrip(": ")
                       + "; a retry resumes from the last checkpoint", True, code)  # fmt: skip
    if disruption and disruption.get("status") == "True":
        why = DISRUPTIONS.get(disruption.get("reason", ""), disruption.get("reason", "disrupted"))
        return Failure("Preempted", f"pod {name} was {why} (node {node}); a retry resumes from the last checkpoint", True, code)
    if status.get("reason") == "DeadlineExceeded":
        return Failure("DeadlineExceeded", f"pod {name} ran past its deadline: {status.get('message', '')}", False, code)
    if code == USER_ERROR:
        return Failure("UserError", f"pod {name} exited {code}: the stage cannot succeed as configured (see its log)", False, code)
    if code is not None:
        detail = f" ({terminated.get('reason')})" if terminated and terminated.get("reason") not in (None, "Error") else ""
        signal = f", killed by signal {code - 128}" if code > 128 else ""
        return Failure("ExitCode", f"pod {name} exited {code}{detail}{signal} on node {node}", True, code)
    return Failure("Failed", f"pod {name} failed on node {node}: {status.get('reason') or ''} {status.get('message') or ''}".rstrip(),
                   True)  # fmt: skip


def job_finished(job: dict[str, Any], complete: str = "Complete") -> str | None:
    """`succeeded` or `failed` once the job says so (its `complete` or Failed condition: a
    Job's and a TrainJob's `Complete`, a JobSet's `Completed`), else None."""
    conditions = _conditions(job)
    if (conditions.get(complete) or {}).get("status") == "True":
        return "succeeded"
    if (conditions.get("Failed") or {}).get("status") == "True":
        return "failed"
    return None


def job_suspended(job: dict[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def suspended_since(job: dict[str, Any]) -> float | None:
    """When a suspended job was suspended (its `Suspended` condition, epoch seconds), so a
    wait for admission keeps the job's own clock across restarts; None without the condition."""
    cond = _conditions(job).get("Suspended") or {}
    stamp = cond.get("lastTransitionTime")
    if cond.get("status") != "True" or not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rank_name(pod: dict[str, Any]) -> str:
    """`rank N` for a training node's pod (its completion index), else the pod's part of a
    JobSet (a Kubeflow Trainer runtime's `dataset-initializer`)."""
    meta = pod.get("metadata") or {}
    part = (meta.get("labels") or {}).get(REPLICATED_JOB_LABEL, NODE_JOB)
    index = (meta.get("annotations") or {}).get(INDEX_ANNOTATION, "?")
    return f"rank {index}" if part == NODE_JOB else f"{part} pod {index}"


def job_failure(job: dict[str, Any], pods: list[dict[str, Any]], container: str = "base", what: str = "job") -> Failure:
    """Why a multi-node job (`what`: job, JobSet, TrainJob) failed: the rank that failed first
    (its pod's own failure), and that the job stopped the others."""
    name = (job.get("metadata") or {}).get("name", "?")
    cond = _conditions(job).get("Failed", {})
    failed = []
    for pod in pods:
        state = pod_state(pod, container)
        if state.phase == "failed" and state.failure is not None:
            failed.append((_finished_at(pod, container), pod, state.failure))
    if not failed:
        return Failure("JobFailed", f"{what} {name} failed: {cond.get('reason', '')} {cond.get('message', '')}".rstrip(), True)
    # finishedAt has whole seconds: on a tie, a rank that was stopped (SIGTERM/SIGKILL, as the
    # Job controller stops the others) did not fail first; one the kernel OOM-killed (137 too) did
    failed.sort(key=lambda t: (t[0], t[2].reason == "ExitCode" and t[2].exit_code in (137, 143)))
    _, pod, first = failed[0]
    return Failure(first.reason, f"{what} {name}: {rank_name(pod)} failed first: {first.message}; the {what} stopped every "
                                 f"other rank ({len(pods)} pods)", first.retryable, first.exit_code)  # fmt: skip


def _finished_at(pod: dict[str, Any], container: str) -> str:
    terminated = (_container(pod, container).get("state") or {}).get("terminated") or {}
    return str(terminated.get("finishedAt") or "9999")
