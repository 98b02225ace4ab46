"""`runtime`: where stages run (local processes or Kubernetes) and with what."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from domainllm.spec.base import Section
from domainllm.spec.kubernetes import KubernetesConfig, quantity
from domainllm.stages.names import MULTI_NODE_STAGES, STAGE_IMAGES, STAGE_NAMES


class Image(Section):
    ref: str | None = None
    """Container image for Kubernetes (e.g. `registry.example.com/domainllm-worker:0.1.0`)."""
    python: str | None = None
    """Local launcher: the Python interpreter (a venv's `bin/python`) that runs stages of
    this image. Empty means the interpreter running Airflow."""


def _default_images() -> dict[str, Image]:
    return {name: Image() for name in sorted(set(STAGE_IMAGES.values()))}


class Resources(Section):
    cpu: str = "1"
    """CPU request, Kubernetes quantity (`2`, `500m`)."""
    memory: str = "4Gi"
    """Memory request and limit, Kubernetes quantity (`16Gi`)."""
    gpus: int = Field(default=0, ge=0)
    """GPUs per node (`nvidia.com/gpu`)."""
    nodes: int = Field(default=1, ge=1)
    """Nodes for multi-node jobs (training); other stages use 1."""
    processes: int | None = Field(default=None, ge=1)
    """Training processes per node (`torchrun --nproc-per-node`); null: one per GPU, or 1.
    Locally, more than one runs the stage under torchrun (gloo on CPU)."""
    node_pool: str | None = None
    """Name of an entry in `runtime.node_pools`."""

    @field_validator("cpu", "memory")
    @classmethod
    def _is_quantity(cls, value: str) -> str:
        return quantity(value)

    def processes_per_node(self) -> int:
        return self.processes or max(1, self.gpus)

    def cpu_count(self) -> int:
        """The CPU request in whole cores (at least 1): `500m` -> 1, `2` -> 2."""
        value = self.cpu
        cores = float(value[:-1]) / 1000 if value.endswith("m") else float(value)
        return max(1, int(cores + 0.999))


class NodePool(Section):
    """Where a stage's pods go on Kubernetes: e.g. `gpu-h100` with the GPU nodes' labels and taints."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    """Kubernetes tolerations, e.g. `{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}`."""
    affinity: dict[str, Any] = Field(default_factory=dict)
    """A Kubernetes `affinity` (node affinity, pod anti-affinity), as written in a pod spec."""
    gpu_resource: str = "nvidia.com/gpu"
    """Extended resource the pool's GPUs are requested by (`amd.com/gpu` on AMD nodes)."""


class RuntimeConfig(Section):
    launcher: Literal["local", "kubernetes"] = "local"
    """Which launcher runs stage commands. `local`: a child process on the Airflow worker;
    `kubernetes`: a pod per stage (a multi-node job for training with `nodes > 1`)."""
    grace_period_s: float = Field(default=30.0, ge=0)
    """On a task kill: seconds between SIGTERM and SIGKILL to the stage's process group."""
    images: dict[str, Image] = Field(default_factory=_default_images)
    """Logical image name -> how to run it. Stages pick their image by role."""
    stages: dict[str, Resources] = Field(default_factory=dict)
    """Per-stage resources; stages not listed get the defaults."""
    node_pools: dict[str, NodePool] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for every stage process (no secrets: reference them by name)."""
    kubernetes: KubernetesConfig = KubernetesConfig()
    """Pods, jobs, volumes and node pools on a cluster (`launcher: kubernetes`)."""

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: dict[str, Resources]) -> dict[str, Resources]:
        unknown = sorted(set(value) - set(STAGE_NAMES))
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; known stages: {list(STAGE_NAMES)}")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> RuntimeConfig:
        missing_images = sorted(set(STAGE_IMAGES.values()) - set(self.images))
        if missing_images:
            raise ValueError(f"images: missing entries for {missing_images} (used by the stages)")
        for stage, res in self.stages.items():
            if res.nodes > 1 and stage not in MULTI_NODE_STAGES:
                raise ValueError(f"stages.{stage}.nodes: {res.nodes}, but only {sorted(MULTI_NODE_STAGES)} run on "
                                 f"several nodes")  # fmt: skip
            if res.node_pool is not None and res.node_pool not in self.node_pools:
                raise ValueError(
                    f"stages.{stage}.node_pool: {res.node_pool!r} is not defined in runtime.node_pools "
                    f"(defined: {sorted(self.node_pools)})"
                )
        pool = self.kubernetes.serving.node_pool
        if pool is not None and pool not in self.node_pools:
            raise ValueError(f"kubernetes.serving.node_pool: {pool!r} is not defined in runtime.node_pools "
                             f"(defined: {sorted(self.node_pools)})")  # fmt: skip
        return self

    def resources(self, stage: str) -> Resources:
        return self.stages.get(stage, Resources())
