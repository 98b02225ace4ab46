"""The fake API server's custom objects (fake_k8s.py routes `/apis/<group>/<version>/...` here)
and two tiny controllers for the multi-node job APIs the launcher can use:

- JobSet (jobset.x-k8s.io/v1alpha2): each replicatedJob replica becomes an Indexed Job
  `<jobset>-<replicatedJob>-<index>` owned by the JobSet, with the JobSet's labels and
  annotations (`jobset.sigs.k8s.io/jobset-name`, `.../replicatedjob-name`, `.../job-index`,
  `.../restart-attempt`) on it and its pod template, and the headless Service
  `enableDNSHostnames` asks for; the fake Job controller (fake_k8s.py) runs those Jobs. The
  JobSet's conditions mirror them: `Failed` (reason `ReachedMaxRestarts` with a failurePolicy,
  else `FailedJobs`) once one Job failed, `Completed` once all did; `Suspended` while
  `spec.suspend`, its Jobs made suspended and resumed with it (`admit`, as Kueue does).
- TrainJob (trainer.kubeflow.org/v1alpha1): becomes a JobSet of its own name, owned by it,
  built from `spec.trainer` the way Kubeflow Trainer's `torch-distributed` runtime would: one
  replicatedJob `node` of `numNodes` pods, container `node` with the trainer's image, command,
  env plus torchrun's `PET_*`, resources, and the `node` entries of `podTemplateOverrides`
  (metadata, pod spec fields, the container's volumeMounts and env). An approximation: the
  real runtime comes from a ClusterTrainingRuntime and its Job keeps the default
  `backoffLimit` (6), where this one fails at the first failed pod like the other backends.
  The TrainJob's `Complete`/`Failed` mirror the JobSet's `Completed`/`Failed`.

Deleting any custom object deletes what it owns (owner references), as the garbage collector
does; other custom objects (a Volcano PodGroup) are only stored."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from domainllm.k8s.jobs import (
    INDEX_ANNOTATION,
    JOBSET_NAME_LABEL,
    NODE_JOB,
    REPLICATED_JOB_LABEL,
    TRAINER_CONTAINER,
)

if TYPE_CHECKING:
    from tests.operators.launchers.fake_k8s import FakeCluster

ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
TORCH_PORT = 29500


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"], "controller": True,
            "blockOwnerDeletion": True}  # fmt: skip


def _true(obj: dict[str, Any], type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in obj["status"].get("conditions") or [])


def _set(obj: dict[str, Any], type_: str, status: str, reason: str, message: str) -> None:
    conds = [c for c in obj["status"].get("conditions") or [] if c["type"] != type_]
    obj["status"]["conditions"] = [*conds, {"type": type_, "status": status, "reason": reason, "message": message,
                                            "lastTransitionTime": _now()}]  # fmt: skip


SUSPENDED = {"jobsets": ("SuspendedJobs", "jobset is suspended", "ResumeJobs", "jobset is resumed"),
             "trainjobs": ("Suspended", "TrainJob is suspended", "Resumed", "TrainJob is resumed")}  # fmt: skip
"""The Suspended condition's (reason, message) when suspended, then resumed, as each controller writes it."""


# -- the API --------------------------------------------------------------------------------------


def create(cluster: FakeCluster, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """Stores the object (KeyError: it exists) and runs its controller."""
    obj = copy.deepcopy(body)
    meta = obj["metadata"]
    key = f"{plural}/{meta['name']}"
    with cluster.changed:
        if key in cluster.custom:
            raise KeyError(key)
        meta.update(namespace=cluster.ns, uid=uuid.uuid4().hex, creationTimestamp=_now(), resourceVersion="1")
        obj["status"] = {}
        if plural in SUSPENDED and obj["spec"].get("suspend"):
            _set(obj, "Suspended", "True", *SUSPENDED[plural][:2])
        cluster.custom[key] = obj
        cluster.created.append((plural, meta["name"]))
        cluster.changed.notify_all()
    if plural == "jobsets":
        _jobs(cluster, obj)
    elif plural == "trainjobs":
        create(cluster, "jobsets", trainjob_jobset(obj))
    return obj


def label(cluster: FakeCluster, plural: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    with cluster.changed:
        obj = cluster.custom[f"{plural}/{name}"]
        obj["metadata"].setdefault("labels", {}).update(labels)
        return copy.deepcopy(obj)


def delete(cluster: FakeCluster, plural: str, name: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
    """Removes the object and, as the garbage collector does, what it owns."""
    with cluster.changed:
        obj = cluster.custom.pop(f"{plural}/{name}", None)
        if obj is None:
            return None
        cluster.deleted.append((plural, name, query))
        uid = obj["metadata"]["uid"]
        jobs = [n for n, j in cluster.jobs.items() if _owned_by(j, uid)]
        owned = [k for k, o in cluster.custom.items() if _owned_by(o, uid)]
        for svc in [n for n, s in cluster.services.items() if _owned_by(s, uid)]:
            cluster.services.pop(svc)
        cluster.changed.notify_all()
    for job in jobs:
        cluster.delete_job(job, {})
    for key in owned:
        delete(cluster, *key.split("/", 1), {})
    return obj


def admit(cluster: FakeCluster, plural: str, name: str) -> None:
    """Kueue admits a suspended JobSet or TrainJob: it resumes, and so does what it made."""
    with cluster.changed:
        obj = cluster.custom[f"{plural}/{name}"]
        assert obj["spec"].get("suspend"), f"{plural} {name} is not suspended"
        obj["spec"]["suspend"] = False
        _set(obj, "Suspended", "False", *SUSPENDED[plural][2:])
        uid = obj["metadata"]["uid"]
        jobs = [n for n, j in cluster.jobs.items() if _owned_by(j, uid)]
        cluster.changed.notify_all()
    if plural == "trainjobs":  # Trainer resumes its JobSet
        admit(cluster, "jobsets", name)
    for job in jobs:
        cluster.admit(job)


# -- the controllers --------------------------------------------------------------------------------


def _jobs(cluster: FakeCluster, jobset: dict[str, Any]) -> None:
    """The JobSet controller's first reconcile: its headless Service and its Jobs."""
    name, spec = jobset["metadata"]["name"], jobset["spec"]
    network = spec.get("network") or {}
    subdomain = network.get("subdomain") or name
    if network.get("enableDNSHostnames"):
        with cluster.changed:
            cluster.services.setdefault(subdomain, {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": subdomain, "namespace": cluster.ns, "uid": uuid.uuid4().hex, "ownerReferences": [_owner(jobset)]},
                "spec": {"clusterIP": "None", "selector": {JOBSET_NAME_LABEL: name},
                         "publishNotReadyAddresses": network.get("publishNotReadyAddresses", True)}})  # fmt: skip
    for rjob in spec["replicatedJobs"]:
        for index in range(rjob.get("replicas", 1)):
            template = copy.deepcopy(rjob["template"])
            marks = {JOBSET_NAME_LABEL: name, REPLICATED_JOB_LABEL: rjob["name"], "jobset.sigs.k8s.io/job-index": str(index),
                     "jobset.sigs.k8s.io/restart-attempt": "0"}  # fmt: skip
            pod_meta = template["spec"]["template"].setdefault("metadata", {})
            for meta in (template.setdefault("metadata", {}), pod_meta):
                meta["labels"] = {**(meta.get("labels") or {}), **marks}
                meta["annotations"] = {**(meta.get("annotations") or {}), **marks}
            if network.get("enableDNSHostnames"):
                template["spec"]["template"]["spec"]["subdomain"] = subdomain
            cluster.create_job({"apiVersion": "batch/v1", "kind": "Job",
                                "metadata": {**template["metadata"], "name": f"{name}-{rjob['name']}-{index}",
                                             "ownerReferences": [_owner(jobset)]},
                                "spec": {**template["spec"], "suspend": bool(spec.get("suspend"))}})  # fmt: skip


def reconcile(cluster: FakeCluster) -> None:
    """After every change of a pod or Job: JobSets' conditions from their Jobs', TrainJobs'
    from their JobSets'."""
    with cluster.changed:
        for key, jobset in cluster.custom.items():
            if not key.startswith("jobsets/") or _true(jobset, "Completed") or _true(jobset, "Failed"):
                continue
            jobs = [j for j in cluster.jobs.values() if _owned_by(j, jobset["metadata"]["uid"])]
            expected = sum(r.get("replicas", 1) for r in jobset["spec"]["replicatedJobs"])
            if any(_true(j, "Failed") for j in jobs):
                capped = bool(jobset["spec"].get("failurePolicy"))
                _set(jobset, "Failed", "True", "ReachedMaxRestarts" if capped else "FailedJobs",
                     "jobset failed due to reaching max number of restarts" if capped else "jobset failed due to one or more job failures")  # fmt: skip
                jobset["status"]["terminalState"] = "Failed"
            elif len(jobs) == expected and all(_true(j, "Complete") for j in jobs):
                _set(jobset, "Completed", "True", "AllJobsCompleted", "jobset completed successfully")
                jobset["status"]["terminalState"] = "Completed"
        for key, trainjob in cluster.custom.items():
            jobset = cluster.custom.get(f"jobsets/{key.split('/', 1)[1]}") if key.startswith("trainjobs/") else None
            if jobset is None:
                continue
            for source, target in (("Completed", "Complete"), ("Failed", "Failed")):
                if _true(jobset, source) and not _true(trainjob, target):
                    cond = next(c for c in jobset["status"]["conditions"] if c["type"] == source)
                    _set(trainjob, target, "True", cond["reason"], cond["message"])
        cluster.changed.notify_all()


def trainjob_jobset(trainjob: dict[str, Any]) -> dict[str, Any]:
    """The JobSet the `torch-distributed` runtime would make of a TrainJob (see the module's
    docstring for where this is an approximation)."""
    name, spec = trainjob["metadata"]["name"], trainjob["spec"]
    trainer = spec.get("trainer") or {}
    nodes = int(trainer.get("numNodes") or 1)
    pet = [{"name": "PET_NNODES", "value": str(nodes)}, {"name": "PET_NPROC_PER_NODE", "value": str(trainer.get("numProcPerNode", "auto"))},
           {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}},
           {"name": "PET_MASTER_ADDR", "value": f"{name}-{NODE_JOB}-0-0.{name}"}, {"name": "PET_MASTER_PORT", "value": str(TORCH_PORT)}]  # fmt: skip
    main: dict[str, Any] = {"name": TRAINER_CONTAINER, "image": trainer.get("image", "pytorch/pytorch"), "command": trainer.get("command", []),
                            "env": [*trainer.get("env", []), *pet], "resources": copy.deepcopy(trainer.get("resourcesPerNode") or {})}  # fmt: skip
    pod_meta: dict[str, Any] = {"labels": {ANCESTOR_LABEL: "trainer"}, "annotations": {}}
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [main]}
    for override in spec.get("podTemplateOverrides") or []:
        if NODE_JOB not in [t["name"] for t in override.get("targetJobs") or []]:
            continue
        for part in ("labels", "annotations"):
            pod_meta[part].update((override.get("metadata") or {}).get(part) or {})
        for field, value in (override.get("spec") or {}).items():
            if field != "containers":
                pod_spec[field] = copy.deepcopy(value)
                continue
            for c in value:
                if c["name"] == TRAINER_CONTAINER:
                    main["volumeMounts"] = copy.deepcopy(c.get("volumeMounts") or [])
                    main["env"] = [*main["env"], *copy.deepcopy(c.get("env") or [])]
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "metadata": {"name": name, "labels": {}, "ownerReferences": [_owner(trainjob)]},
            "spec": {"suspend": bool(spec.get("suspend")), "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
                     "replicatedJobs": [{"name": NODE_JOB, "replicas": 1, "template": {
                         "metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                         "spec": {"completionMode": "Indexed", "completions": nodes, "parallelism": nodes, "backoffLimit": 0,
                                  "template": {"metadata": pod_meta, "spec": pod_spec}}}}]}}  # fmt: skip
