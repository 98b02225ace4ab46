"""The multi-node kinds the launcher runs (`runtime.kubernetes.training.backend`), as what it
needs to know of each to follow it: where it is in the API, which label finds its pods, the
condition that says it succeeded and the container that trains. The three end the same way
(a Failed condition, failed pods that say why) so one set of verdicts (`status`) reads them.

- `indexed_job`: a batch/v1 Job; its pods carry `batch.kubernetes.io/job-name`.
- `jobset` (jobset.x-k8s.io/v1alpha2): the JobSet controller makes one Indexed Job per
  replicatedJob replica, named `<jobset>-<replicatedJob>-<index>`, and puts
  `jobset.sigs.k8s.io/jobset-name` and `jobset.sigs.k8s.io/replicatedjob-name` on it and its
  pods (kubernetes-sigs/jobset `labelAndAnnotateObject`); it ends with a `Completed` or
  `Failed` condition (`Suspended` while suspended).
- `trainjob` (trainer.kubeflow.org/v1alpha1): Kubeflow Trainer makes a JobSet of the
  TrainJob's name from its runtime, so the pods carry the same JobSet labels; the trainer's
  container is `node` and its replicatedJob `node` (the `torch-distributed` runtime); the
  TrainJob mirrors the JobSet's end as `Complete` or `Failed` (kubeflow/trainer's jobset
  plugin `Status`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domainllm.k8s.jobs import (
    JOB_NAME_LABEL,
    JOBSET_NAME_LABEL,
    NODE_JOB,
    REPLICATED_JOB_LABEL,
    TRAINER_CONTAINER,
)
from domainllm.k8s.pod import CONTAINER
from domainllm.k8s.status import job_finished


@dataclass(frozen=True)
class Workload:
    kind: str
    """The handle's kind, as kubectl names it (`kubectl delete <kind> <name>`)."""
    noun: str
    """What messages call it."""
    api_version: str
    plural: str
    complete: str
    """The condition type that says it succeeded (`Failed` says it failed, for all three)."""
    pod_label: str
    """The label whose value is the object's name on every pod it makes."""
    container: str
    master: str
    """Rank 0's address, from the object's name (`{name}`)."""
    needs: str = ""
    """What the cluster must run for it (said when its API is missing)."""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def custom(self) -> bool:
        """A custom resource (the custom objects API), not a built-in Job."""
        return self.group != "batch"

    def pod_selector(self, name: str) -> str:
        return f"{self.pod_label}={name}"

    def finished(self, obj: dict[str, Any]) -> str | None:
        """`succeeded` or `failed` once the object's conditions say so, else None."""
        return job_finished(obj, self.complete)

    def rendezvous(self, name: str) -> str:
        return self.master.format(name=name)

    def missing(self) -> str:
        """Why a cluster that answers 404 for this kind's API cannot run it, and what to do."""
        return (f"the cluster serves no {self.noun} API ({self.plural}.{self.group}/{self.version}): install {self.needs}, "
                f"or set runtime.kubernetes.training.backend: indexed_job (built into Kubernetes)")  # fmt: skip


INDEXED_JOB = Workload("job", "job", "batch/v1", "jobs", "Complete", JOB_NAME_LABEL, CONTAINER, "{name}-0.{name}")
JOBSET = Workload("jobset", "JobSet", "jobset.x-k8s.io/v1alpha2", "jobsets", "Completed", JOBSET_NAME_LABEL, CONTAINER,
                  "{name}-node-0-0.{name}", "the JobSet controller (v0.6 or later)")  # fmt: skip
TRAINJOB = Workload("trainjob", "TrainJob", "trainer.kubeflow.org/v1alpha1", "trainjobs", "Complete", JOBSET_NAME_LABEL,
                    TRAINER_CONTAINER, "{name}-node-0-0.{name}", "Kubeflow Trainer v2.1 (with the JobSet controller it "
                    "installs) and the ClusterTrainingRuntime of training.trainjob_runtime")  # fmt: skip
BY_BACKEND = {"indexed_job": INDEXED_JOB, "jobset": JOBSET, "trainjob": TRAINJOB}
BY_KIND = {w.kind: w for w in BY_BACKEND.values()}


def by_kind(kind: str) -> Workload:
    """The workload of a handle's kind (`job`, `jobset`, `trainjob`)."""
    if kind not in BY_KIND:
        raise ValueError(f"not a multi-node kind: {kind!r} (one of {', '.join(BY_KIND)})")
    return BY_KIND[kind]


def is_rank(pod: dict[str, Any]) -> bool:
    """A training node's pod (not a Trainer runtime's initializer): Indexed Job pods, and
    JobSet pods of the `node` replicatedJob."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REPLICATED_JOB_LABEL, NODE_JOB) == NODE_JOB
