"""Multi-node training: N pods, one per node, each running torchrun with a static rendezvous
on pod 0. By default an Indexed Job plus a headless Service (both built into Kubernetes):
pod i gets hostname `<job>-i` and `JOB_COMPLETION_INDEX=i`, pod 0 is reachable at
`<job>-0.<job>`; `backoffLimit: 0` makes it all or nothing (one rank fails, the job fails
and its pods are stopped). Clusters that run JobSet or Kubeflow Trainer v2 get the same nodes
as a JobSet or a TrainJob (`training.backend`; the launcher runs all three, reading them
through `workloads`); Kueue and Volcano get their gang-scheduling hints."""

from __future__ import annotations

import copy
from typing import Any

from domainllm.k8s.pod import PodTarget, annotations, container, labels, pod_command, pod_spec, torchrun
from domainllm.launch import LaunchRequest

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
MULTUS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
VOLCANO_GROUP_ANNOTATION = "scheduling.k8s.io/group-name"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
"""What the JobSet controller puts on its Jobs and their pods (kubernetes-sigs/jobset)."""
NODE_JOB = "node"
"""The replicatedJob of the training nodes: ours, and Kubeflow Trainer's runtimes'."""
TRAINER_CONTAINER = "node"
"""The trainer's container in a Kubeflow Trainer runtime (what a TrainJob's `trainer` fills in)."""
MAX_JOB_NAME = 52
"""Leaves room for `-<index>` in pod hostnames (63) and the controller's pod name suffix."""


def _nccl_env(target: PodTarget) -> list[dict[str, str]]:
    net = target.k8s.interconnect
    values = {
        "NCCL_DEBUG": net.nccl_debug,
        "NCCL_IB_HCA": net.nccl_ib_hca,
        "NCCL_IB_GID_INDEX": None if net.nccl_ib_gid_index is None else str(net.nccl_ib_gid_index),
        "NCCL_SOCKET_IFNAME": net.nccl_socket_ifname,
    }
    if net.mode == "none":
        values["NCCL_IB_DISABLE"] = "1"  # no RDMA devices in the pod: do not probe for them
    return [{"name": k, "value": v} for k, v in values.items() if v is not None]


def _rank_env() -> list[dict[str, Any]]:
    return [{"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}]


def node_pod_template(request: LaunchRequest, target: PodTarget, *, master: str, subdomain: str | None) -> dict[str, Any]:
    """The pod template every node's pod is made from."""
    net = target.k8s.interconnect
    res = request.resources
    command = torchrun(pod_command(request, target), procs=res.processes_per_node(), nodes=res.nodes, master=master,
                       port=target.k8s.training.rdzv_port)  # fmt: skip
    rdma = net.mode == "rdma"
    main = container(request, target, command, ipc_lock=rdma,
                     extra_resources={net.rdma_resource: net.rdma_per_pod} if rdma else None,
                     ports=[{"name": "rendezvous", "containerPort": target.k8s.training.rdzv_port}])  # fmt: skip
    main["env"] = [*main["env"], *_nccl_env(target), *_rank_env()]
    spec = pod_spec(request, target, main)
    if subdomain:
        spec["subdomain"] = subdomain
    if net.mode == "host_network":
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    meta: dict[str, Any] = {"labels": labels(request, target, "training"), "annotations": annotations(request, target)}
    if rdma and net.networks:
        meta["annotations"][MULTUS_ANNOTATION] = net.networks
    return {"metadata": meta, "spec": spec}


def _gang(target: PodTarget, name: str, job_meta: dict[str, Any], template: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    """Gang-scheduling hints; returns whether the job starts suspended and extra objects."""
    jobs = target.k8s.training
    if jobs.gang == "kueue":
        if jobs.queue:
            job_meta["labels"][KUEUE_QUEUE_LABEL] = jobs.queue
        return True, []
    if jobs.gang == "volcano":
        template["spec"]["schedulerName"] = "volcano"
        template["metadata"]["annotations"][VOLCANO_GROUP_ANNOTATION] = name
        return False, [{"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
                        "metadata": {"name": name, "namespace": target.k8s.namespace, "labels": dict(job_meta["labels"])},
                        "spec": {"minMember": 0, **({"queue": jobs.queue} if jobs.queue else {})}}]  # fmt: skip
    return False, []


def indexed_job(request: LaunchRequest, target: PodTarget, name: str) -> list[dict[str, Any]]:
    """[headless Service, Job (+ a Volcano PodGroup)]: what a multi-node stage creates, in
    creation order. The launcher gives the Service an owner reference to the Job once the Job
    exists, so deleting the Job removes it too."""
    nodes = request.resources.nodes
    ns = target.k8s.namespace
    master = f"{name}-0.{name}"
    template = node_pod_template(request, target, master=master, subdomain=name)
    meta = {"name": name, "namespace": ns, "labels": labels(request, target, "training"),
            "annotations": annotations(request, target)}  # fmt: skip
    suspend, extra = _gang(target, name, meta, template)
    for obj in extra:
        if obj["kind"] == "PodGroup":
            obj["spec"]["minMember"] = nodes
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels(request, target, "training")},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # ranks resolve pod 0 before anything is ready
            "selector": {JOB_NAME_LABEL: name},
            "ports": [{"name": "rendezvous", "port": target.k8s.training.rdzv_port,
                       "targetPort": target.k8s.training.rdzv_port}],  # fmt: skip
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            "backoffLimit": 0,  # all or nothing: the attempt (and its checkpoints) is retried by Airflow
            "suspend": suspend,
            "template": template,
        },
    }
    return [*extra, service, job]


def jobset(request: LaunchRequest, target: PodTarget, name: str) -> list[dict[str, Any]]:
    """The same nodes as a JobSet (jobset.x-k8s.io): the controller makes the headless Service;
    pod 0 is `<name>-node-0-0.<name>`."""
    master = f"{name}-node-0-0.{name}"
    template = node_pod_template(request, target, master=master, subdomain=None)
    meta = {"name": name, "namespace": target.k8s.namespace, "labels": labels(request, target, "training"),
            "annotations": annotations(request, target)}  # fmt: skip
    suspend, extra = _gang(target, name, meta, template)
    nodes = request.resources.nodes
    for obj in extra:
        obj["spec"]["minMember"] = nodes
    return [*extra, {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": meta,
        "spec": {
            "suspend": suspend,
            "network": {"enableDNSHostnames": True, "subdomain": name, "publishNotReadyAddresses": True},
            "failurePolicy": {"maxRestarts": 0},
            "replicatedJobs": [{"name": NODE_JOB, "replicas": 1, "template": {"spec": {
                "completionMode": "Indexed", "completions": nodes, "parallelism": nodes, "backoffLimit": 0,
                "template": template}}}],
        },
    }]  # fmt: skip


def trainjob(request: LaunchRequest, target: PodTarget, name: str) -> list[dict[str, Any]]:
    """A Kubeflow Trainer v2 TrainJob: the runtime (`training.trainjob_runtime`) brings torchrun's
    rendezvous (`PET_*`) and the JobSet; we give the image, the stage command, the node count
    and resources, and through `podTemplateOverrides` (Trainer v2.1) the pods' labels, volumes
    and their mounts, placement and service account. The pod and container securityContext
    stay the runtime's: v2.1's overrides cannot set them."""
    template = node_pod_template(request, target, master="", subdomain=None)
    main = template["spec"]["containers"][0]
    res = request.resources
    command = ["torchrun", "-m", *pod_command(request, target)] if res.processes_per_node() > 1 or res.nodes > 1 \
        else pod_command(request, target)  # fmt: skip
    meta = {"name": name, "namespace": target.k8s.namespace, "labels": labels(request, target, "training"),
            "annotations": annotations(request, target)}  # fmt: skip
    kueue = target.k8s.training.gang == "kueue"
    if kueue and target.k8s.training.queue:
        meta["labels"][KUEUE_QUEUE_LABEL] = target.k8s.training.queue
    env = [e for e in main["env"] if e["name"] != "NODE_RANK"]  # the runtime sets torchrun's PET_* itself
    overrides = {k: v for k, v in template["spec"].items()
                 if k in ("serviceAccountName", "nodeSelector", "tolerations", "affinity", "volumes", "imagePullSecrets")}
    overrides["containers"] = [{"name": TRAINER_CONTAINER, "volumeMounts": main["volumeMounts"]}]
    return [{
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": meta,
        "spec": {
            "runtimeRef": {"name": target.k8s.training.trainjob_runtime},
            "suspend": kueue,  # Kueue admits it whole (as the Job and the JobSet)
            "trainer": {"image": main["image"], "command": command, "numNodes": res.nodes,
                        "numProcPerNode": res.processes_per_node(), "resourcesPerNode": copy.deepcopy(main["resources"]),
                        "env": env},
            "podTemplateOverrides": [{"targetJobs": [{"name": NODE_JOB}], "metadata": copy.deepcopy(template["metadata"]),
                                      "spec": overrides}],
        },
    }]  # fmt: skip


BACKENDS = {"indexed_job": indexed_job, "jobset": jobset, "trainjob": trainjob}


def training_objects(request: LaunchRequest, target: PodTarget, name: str) -> list[dict[str, Any]]:
    return BACKENDS[target.k8s.training.backend](request, target, name)
