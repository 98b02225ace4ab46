"""`runtime.kubernetes.serving`: how the `rollout` stage serves versions on a cluster.

What the Helm chart owns: the gateway (Deployment, Service, its keys Secret) and the RBAC.
What the rollout owns, and the chart never templates: one vLLM Deployment and Service per
served version (labelled `app.kubernetes.io/managed-by: domainllm-rollout`) and the routes
ConfigMap that every gateway replica mounts. So `helm upgrade` and a rollout never undo
each other (docs/deploy.md)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from domainllm.spec.base import Section

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r}: lower-case letters, digits and '-', starting with a letter, at most 40")
    return value


class KubernetesServing(Section):
    gateway_service: str = "domainllm-gateway"
    """The chart's gateway Service (`<release fullname>-gateway`): clients and the probes use
    it, and its selector finds the gateway pods whose metrics a canary step adds up."""
    routes_config_map: str = "domainllm-routes"
    """The ConfigMap the rollout writes (`routes.json`, `augment.json`) and the gateway
    mounts (chart value `serving.gateway.routesConfigMap`)."""
    name_prefix: str = "domainllm-vllm"
    """vLLM Deployments and Services are `<prefix>-v<version>`."""
    service_account: str = "domainllm-rollout"
    """The rollout stage pod's service account: the one stage that calls the Kubernetes API
    (the chart's `domainllm-rollout` Role: exactly those calls)."""
    server_service_account: str = "domainllm-serve"
    """The vLLM pods' (no API token)."""
    api_key_secret: str = "domainllm-vllm-api-key"
    """Secret with `api-key`: vLLM answers /v1 only with it; the gateway, the rollout's warm-up
    and the flywheel's `sample` send it."""
    probe_key_secret: str | None = None
    """Secret with `api-key`, a gateway key of role `platform`, when `serving.rollout.
    probe_requests` is above 0 (the rollout's own requests through the gateway)."""
    node_pool: str | None = None
    """Entry of `runtime.node_pools` the vLLM pods go to (the GPU pool)."""
    replicas: int = Field(default=1, ge=1)
    gpus: int = Field(default=1, ge=0)
    """GPUs per replica; with more than one, `serving.tensor_parallel_size` should match."""
    cpu: str = "8"
    memory: str = "64Gi"
    shm_size: str = "8Gi"
    startup_timeout_s: float = Field(default=1200, gt=0)
    """How long a new version's pods may take to load the model and become ready."""
    prometheus_url: str | None = None
    """Read the gateway metrics from Prometheus (`http://prometheus.monitoring:9090`) instead
    of scraping each gateway pod through the API server."""

    @field_validator("gateway_service", "routes_config_map", "name_prefix", "service_account", "server_service_account",
                     "api_key_secret", "probe_key_secret")  # fmt: skip
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return value if value is None else _name(value)

    @field_validator("cpu", "memory", "shm_size")
    @classmethod
    def _quantities(cls, value: str) -> str:
        from domainllm.spec.kubernetes import quantity

        return quantity(value)
