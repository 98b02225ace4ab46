"""The pod of one stage: the same command as locally, in the stage's image, with the spec's
resources, node pool, volumes, secrets by name and a locked-down security context."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from domainllm.k8s.names import label_value
from domainllm.launch import PROGRAM, LaunchRequest
from domainllm.spec.kubernetes import KubernetesConfig

CONTAINER = "base"
"""The stage's container (the name the provider's PodManager follows by default)."""

LABEL_PIPELINE = "domainllm/pipeline"
LABEL_RUN = "domainllm/run-id"
LABEL_STEP = "domainllm/step"
LABEL_ATTEMPT = "domainllm/attempt-id"
LABEL_CHECKED = "domainllm/checked"
"""Set on a finished pod or job that an attempt has dealt with: never reattached to."""
ANNOTATION_RUN = "domainllm/run-id"
ANNOTATION_STAGE = "domainllm/stage"
ANNOTATION_MLFLOW = "domainllm/mlflow-run-id"
ANNOTATION_COMMAND = "domainllm/command"

CHECKOV_SKIPS = {  # reviewed findings of checkov on what we send, each with its reason (as annotations)
    "CKV_K8S_8": "a batch pod: it runs to completion and its exit is watched; liveness restarts would lose work",
    "CKV_K8S_9": "a batch pod: nothing is routed to it",
    "CKV_K8S_15": "release tags are immutable; IfNotPresent spares re-pulling multi-GB images (runtime.kubernetes.image_pull_policy)",
    "CKV_K8S_35": "stages read credentials (MLflow, object store, judge) from the environment, filled from Secrets by reference",
    "CKV_K8S_43": "images are addressed by the tag in runtime.images; pin digests with immutable tags in the registry",
    "CKV2_K8S_6": "training ranks connect to each other on ports NCCL chooses; the platform's NetworkPolicies cover its services",
}
API_TOKEN_SKIP = ("CKV_K8S_38", "the rollout stage makes the vLLM Deployments and writes the routes ConfigMap: its own "
                  "service account, whose Role allows exactly those calls")  # fmt: skip
IPC_LOCK_SKIP = ("CKV_K8S_25", "IPC_LOCK pins memory for RDMA (runtime.kubernetes.interconnect.mode: rdma)")

_CACHE_ENV = {  # everything that writes caches goes to the cache volume or /tmp: the image is read-only
    "HOME": "/tmp",
    "MPLCONFIGDIR": "/tmp/matplotlib",
}


@dataclass(frozen=True)
class PodTarget:
    """What a launch needs beyond the request: the cluster settings, the spec file's name in
    the specs ConfigMap, and lineage known before the pod starts."""

    k8s: KubernetesConfig
    spec_file: str
    mlflow_run_id: str | None = None


def identity_labels(request: LaunchRequest) -> dict[str, str]:
    """The labels that identify what runs (pipeline, run, step): an attempt that finds a
    live pod or job with these reattaches to it instead of starting a duplicate."""
    return {key: label_value(request.labels[key]) for key in (LABEL_PIPELINE, LABEL_RUN, LABEL_STEP)}


def labels(request: LaunchRequest, target: PodTarget, component: str) -> dict[str, str]:
    out = {
        **{k: label_value(v) for k, v in target.k8s.labels.items()},
        "app.kubernetes.io/name": "domainllm",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "domainllm",
        **identity_labels(request),
    }
    if request.attempt_id:
        out[LABEL_ATTEMPT] = label_value(request.attempt_id)
    return out


def annotations(request: LaunchRequest, target: PodTarget) -> dict[str, str]:
    skips = dict(CHECKOV_SKIPS)
    if request.resources.nodes > 1 and target.k8s.interconnect.mode == "rdma":
        skips[IPC_LOCK_SKIP[0]] = IPC_LOCK_SKIP[1]
    if request.name == "rollout":
        skips[API_TOKEN_SKIP[0]] = API_TOKEN_SKIP[1]
    out = {**target.k8s.annotations, ANNOTATION_RUN: request.run_id, ANNOTATION_STAGE: request.name,
           ANNOTATION_COMMAND: " ".join(pod_command(request, target)),
           **{f"checkov.io/skip{i}": f"{check}={why}" for i, (check, why) in enumerate(sorted(skips.items()), 1)}}  # fmt: skip
    if target.mlflow_run_id:
        out[ANNOTATION_MLFLOW] = target.mlflow_run_id
    return out


def spec_path_in_pod(spec_path: str, target: PodTarget) -> str:
    mount = target.k8s.spec_mount_path.rstrip("/")
    if spec_path.startswith(mount + "/"):
        return spec_path
    return posixpath.join(mount, target.spec_file)


def pod_command(request: LaunchRequest, target: PodTarget) -> list[str]:
    """The request's command with `--spec` pointing into the specs ConfigMap."""
    command = list(request.command)
    if "--spec" in command:
        i = command.index("--spec") + 1
        command[i] = spec_path_in_pod(command[i], target)
    return command


def torchrun(command: list[str], *, procs: int, nodes: int = 1, master: str | None = None, port: int = 29500) -> list[str]:
    """`domainllm ...` under torchrun: one process per GPU, and with several nodes a static
    rendezvous on pod 0 with this pod's rank from the Job's completion index."""
    if not command or command[0] != PROGRAM or (procs <= 1 and nodes <= 1):
        return command
    if nodes <= 1:
        launcher = ["torchrun", "--standalone", f"--nproc-per-node={procs}"]
    else:
        launcher = ["torchrun", f"--nnodes={nodes}", f"--nproc-per-node={procs}", "--node-rank=$(NODE_RANK)",
                    f"--master-addr={master}", f"--master-port={port}"]  # fmt: skip
    return [*launcher, "-m", PROGRAM, *command[1:]]


def env(request: LaunchRequest, target: PodTarget) -> list[dict[str, Any]]:
    k8s = target.k8s
    values: dict[str, str] = {
        **request.thread_env(),
        **_CACHE_ENV,
        "XDG_CACHE_HOME": k8s.cache.mount_path,
        "HF_HOME": posixpath.join(k8s.cache.mount_path, "huggingface"),
        "TRITON_CACHE_DIR": posixpath.join(k8s.cache.mount_path, "triton"),
        "TORCH_EXTENSIONS_DIR": posixpath.join(k8s.cache.mount_path, "torch_extensions"),
        "PYTHONUNBUFFERED": "1",
        **request.env,
    }
    if k8s.home.claim:
        values["DOMAINLLM_HOME"] = k8s.home.mount_path
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(values.items())]
    out += [{"name": name, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
            for name, ref in sorted(k8s.secret_env.items())]  # fmt: skip
    out += serving_env(request.name, k8s)
    out += [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]  # fmt: skip
    return out


SERVING_STAGES = frozenset({"rollout", "sample"})
"""Stages that talk to vLLM deployments directly (the rollout's warm-up, the flywheel's samples):
they get the key vLLM requires. `rollout` alone calls the Kubernetes API."""


def serving_env(stage: str, k8s: KubernetesConfig) -> list[dict[str, Any]]:
    if stage not in SERVING_STAGES:
        return []
    srv = k8s.serving
    out = [{"name": "DOMAINLLM_BACKEND_API_KEY", "valueFrom": {"secretKeyRef": {"name": srv.api_key_secret, "key": "api-key"}}}]
    if stage == "rollout" and srv.probe_key_secret:
        out.append({"name": "DOMAINLLM_GATEWAY_KEY", "valueFrom": {"secretKeyRef": {"name": srv.probe_key_secret, "key": "api-key"}}})
    return out


def resources(request: LaunchRequest, extra: dict[str, int] | None = None) -> dict[str, Any]:
    """Requests equal to limits (Guaranteed QoS: a training pod is the last to be evicted
    under memory pressure, and a data stage cannot starve its neighbours)."""
    res = request.resources
    amounts: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpus:
        pool = request.node_pool
        amounts[pool.gpu_resource if pool else "nvidia.com/gpu"] = res.gpus
    amounts.update(extra or {})
    return {"requests": dict(amounts), "limits": dict(amounts)}


def volumes(target: PodTarget) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    k8s = target.k8s
    vols: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if k8s.home.claim:
        vols.append({"name": "home", "persistentVolumeClaim": {"claimName": k8s.home.claim}})
        mounts.append({"name": "home", "mountPath": k8s.home.mount_path})
    if k8s.cache.claim:
        vols.append({"name": "cache", "persistentVolumeClaim": {"claimName": k8s.cache.claim}})
    else:
        vols.append({"name": "cache", "emptyDir": {"sizeLimit": k8s.cache.size}})
    mounts.append({"name": "cache", "mountPath": k8s.cache.mount_path})
    vols.append({"name": "specs", "configMap": {"name": k8s.spec_config_map}})
    mounts.append({"name": "specs", "mountPath": k8s.spec_mount_path, "readOnly": True})
    vols.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": k8s.shm_size}})
    mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    vols.append({"name": "tmp", "emptyDir": {}})
    mounts.append({"name": "tmp", "mountPath": "/tmp"})
    return vols, mounts


def container(request: LaunchRequest, target: PodTarget, command: list[str], *, ipc_lock: bool = False,
              extra_resources: dict[str, int] | None = None, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    if not request.image_ref:
        raise ValueError(f"runtime.images.{request.image}.ref is empty: Kubernetes needs a container image for "
                         f"{request.name} (e.g. registry.example.com/domainllm-{request.image}:0.1.0)")  # fmt: skip
    k8s = target.k8s
    _, mounts = volumes(target)
    out: dict[str, Any] = {
        "name": CONTAINER,
        "image": request.image_ref,
        "imagePullPolicy": k8s.image_pull_policy,
        "command": command,
        "env": env(request, target),
        "resources": resources(request, extra_resources),
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": k8s.read_only_root_filesystem,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"], **({"add": ["IPC_LOCK"]} if ipc_lock else {})},
        },
    }
    if k8s.env_from_secrets:
        out["envFrom"] = [{"secretRef": {"name": name}} for name in k8s.env_from_secrets]
    if ports:
        out["ports"] = ports
    return out


UNTRUSTED_CODE_STAGES = frozenset({"eval_code", "label"})
"""Stages that run generated code in the sandbox (which needs user namespaces)."""


def seccomp_profile(request: LaunchRequest, k8s) -> dict[str, str]:
    value = k8s.untrusted_code_seccomp if request.name in UNTRUSTED_CODE_STAGES else "RuntimeDefault"
    if value.startswith("Localhost:"):
        return {"type": "Localhost", "localhostProfile": value.split(":", 1)[1]}
    return {"type": value}


def pod_spec(request: LaunchRequest, target: PodTarget, main: dict[str, Any]) -> dict[str, Any]:
    k8s = target.k8s
    vols, _ = volumes(target)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # stages never call the Kubernetes API, but the rollout (its own account and Role)
        "serviceAccountName": k8s.serving.service_account if request.name == "rollout" else k8s.service_account,
        "automountServiceAccountToken": request.name == "rollout",
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": int(request.grace_period_s),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": k8s.run_as_user,
            "runAsGroup": k8s.run_as_group,
            "fsGroup": k8s.fs_group,
            "seccompProfile": seccomp_profile(request, k8s),
        },
        "containers": [main],
        "volumes": vols,
    }
    return placed(spec, request.node_pool, k8s)


def placed(spec: dict[str, Any], pool, k8s: KubernetesConfig) -> dict[str, Any]:
    """`spec` (a pod spec) on the node pool's nodes, with the pull secrets and priority class."""
    if pool is not None:
        if pool.node_selector:
            spec["nodeSelector"] = dict(pool.node_selector)
        if pool.tolerations:
            spec["tolerations"] = [dict(t) for t in pool.tolerations]
        if pool.affinity:
            spec["affinity"] = dict(pool.affinity)
    if k8s.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in k8s.image_pull_secrets]
    if k8s.priority_class:
        spec["priorityClassName"] = k8s.priority_class
    return spec


def stage_pod(request: LaunchRequest, target: PodTarget, name: str) -> dict[str, Any]:
    """One pod running the stage (torchrun inside when it uses several GPUs)."""
    command = torchrun(pod_command(request, target), procs=request.resources.processes_per_node())
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": target.k8s.namespace,
            "labels": labels(request, target, "stage"),
            "annotations": annotations(request, target),
        },
        "spec": pod_spec(request, target, container(request, target, command)),
    }
