"""The objects the rollout owns on a cluster, as the API's JSON: one vLLM Deployment and its
Service per served version, and the routes ConfigMap the gateway replicas mount. The vLLM
pods get the same `vllm serve` arguments as a local server (`serve/settings.py`), the
serve image, the GPU pool, the home volume read-only (the registry's copy of the model), and
the locked-down security context of every pod we make."""

from __future__ import annotations

from typing import Any

from domainllm.k8s.names import label_value, object_name
from domainllm.k8s.pod import placed
from domainllm.serve.settings import vllm_args, vllm_env
from domainllm.spec import Spec

PORT = 8000
MANAGED_BY = "domainllm-rollout"
LABEL_PIPELINE = "domainllm/pipeline"
LABEL_VERSION = "domainllm/model-version"
LABEL_TRACK = "domainllm/track"
LABEL_DEPLOYMENT = "domainllm/deployment"
ANNOTATION_MODEL = "domainllm/model-path"
VLLM = "/opt/vllm/bin/vllm"
"""vLLM in the serve image (images/serve/Dockerfile)."""
CHECKOV_SKIPS = {  # reviewed findings of checkov on what the rollout sends, each with its reason (as annotations)
    "CKV_K8S_15": "release tags are immutable; IfNotPresent spares re-pulling multi-GB images (runtime.kubernetes.image_pull_policy)",
    "CKV_K8S_35": "vLLM reads its API key from the environment, filled from a Secret by reference",
    "CKV_K8S_43": "images are addressed by the tag in runtime.images; pin digests with immutable tags in the registry",
    "CKV2_K8S_6": "the chart's vllm NetworkPolicy selects these pods (app.kubernetes.io/component: vllm): the gateway and the platform's pods only",
}


def deployment_name(spec: Spec, version: str) -> str:
    return object_name(spec.runtime.kubernetes.serving.name_prefix, f"v{version}")


def owned_labels(spec: Spec) -> dict[str, str]:
    """What every object the rollout made carries: how it finds them again."""
    return {"app.kubernetes.io/name": "domainllm", "app.kubernetes.io/component": "vllm",
            "app.kubernetes.io/managed-by": MANAGED_BY, LABEL_PIPELINE: label_value(spec.name)}  # fmt: skip


def base_url(spec: Spec, name: str) -> str:
    """The Service's in-cluster URL."""
    return f"http://{name}.{spec.runtime.kubernetes.namespace}.svc.cluster.local:{PORT}/v1"


def vllm_deployment(spec: Spec, name: str, version: str, model_path: str, track: str,
                    adapters: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    k8s, srv, cfg = spec.runtime.kubernetes, spec.runtime.kubernetes.serving, spec.serving
    served = f"{spec.name}-base" if adapters else spec.name  # clients ask for the adapter by the pipeline's name
    args = [VLLM, "serve", model_path, "--served-model-name", served, "--host", "0.0.0.0", "--port", str(PORT),
            *vllm_args(cfg, adapters=adapters)]  # fmt: skip
    env = [{"name": k, "value": v} for k, v in sorted(vllm_env(cfg).items())]
    env += [{"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": srv.api_key_secret, "key": "api-key"}}},
            {"name": "HOME", "value": "/tmp"}, {"name": "HF_HOME", "value": "/tmp/huggingface"}]  # fmt: skip
    labels = {**{k: label_value(v) for k, v in k8s.labels.items()}, **owned_labels(spec), LABEL_VERSION: label_value(version), LABEL_TRACK: track, LABEL_DEPLOYMENT: name}
    amounts: dict[str, Any] = {"cpu": srv.cpu, "memory": srv.memory}
    pool = spec.runtime.node_pools.get(srv.node_pool) if srv.node_pool else None
    if srv.gpus:
        amounts[pool.gpu_resource if pool else "nvidia.com/gpu"] = srv.gpus
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    pod: dict[str, Any] = {
        "serviceAccountName": srv.server_service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": k8s.run_as_user, "runAsGroup": k8s.run_as_group,
                            "fsGroup": k8s.fs_group, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "vllm",
            "image": spec.runtime.images["serve"].ref,
            "imagePullPolicy": k8s.image_pull_policy,
            "command": args[:2],
            "args": args[2:],
            "env": env,
            "ports": [{"name": "http", "containerPort": PORT}],
            "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": max(1, int(srv.startup_timeout_s // 10))},
            "readinessProbe": {**probe, "periodSeconds": 5},
            "livenessProbe": {**probe, "periodSeconds": 30, "failureThreshold": 3},
            "resources": {"requests": dict(amounts), "limits": dict(amounts)},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "home", "mountPath": k8s.home.mount_path, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}, {"name": "dshm", "mountPath": "/dev/shm"}],
        }],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": k8s.home.claim, "readOnly": True}},
                    {"name": "tmp", "emptyDir": {}}, {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": srv.shm_size}}],
    }  # fmt: skip
    placed(pod, pool, k8s)
    skips = {f"checkov.io/skip{i}": f"{c}={why}" for i, (c, why) in enumerate(sorted(CHECKOV_SKIPS.items()), 1)}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": k8s.namespace, "labels": labels, "annotations": {ANNOTATION_MODEL: model_path, **skips}},
        "spec": {
            "replicas": srv.replicas,
            "selector": {"matchLabels": {LABEL_DEPLOYMENT: name}},
            # one new replica at a time, none down before it is ready: a version never stops answering
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels, "annotations": skips}, "spec": pod},
        },
    }  # fmt: skip


def vllm_service(spec: Spec, name: str, owner: dict[str, Any]) -> dict[str, Any]:
    """The version's Service, owned by its Deployment: deleting one deletes both."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": spec.runtime.kubernetes.namespace, "labels": owned_labels(spec),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": owner["metadata"]["uid"],
                                          "blockOwnerDeletion": True}]},
        "spec": {"selector": {LABEL_DEPLOYMENT: name}, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]},
    }  # fmt: skip


def routes_config_map(spec: Spec, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": spec.runtime.kubernetes.serving.routes_config_map, "namespace": spec.runtime.kubernetes.namespace,
                         "labels": {**owned_labels(spec), "app.kubernetes.io/component": "gateway"}},
            "data": data}  # fmt: skip
