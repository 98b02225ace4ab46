"""`runtime.kubernetes`: how stages run as pods and training as multi-node jobs.

Only read when `runtime.launcher: kubernetes` (and by `domainllm k8s render`). Nothing here
holds a secret: Secrets are referenced by name and mounted or read into the environment by
the cluster."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainllm.spec.base import Section
from domainllm.spec.kubernetes_serving import KubernetesServing

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (examples: '2', '500m', '16Gi')")
    return value


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes name (lower-case letters, digits and '-', at most 63)")
    return value


def _dns_subdomain(value: str) -> str:
    if not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes object name (lower-case letters, digits, '-' and '.')")
    return value


class SecretKey(Section):
    secret: str
    """Name of a Secret in the namespace."""
    key: str
    """The key in that Secret whose value becomes the variable."""

    @field_validator("secret")
    @classmethod
    def _name(cls, value: str) -> str:
        return _dns_subdomain(value)


class HomeVolume(Section):
    claim: str | None = "domainllm-home"
    """PersistentVolumeClaim (ReadWriteMany) holding `$DOMAINLLM_HOME`: the artifact root when
    it is a path, source data, the demo's corpora. Mount the same claim at the same path in the
    Airflow workers: operators read each stage's manifest from there. Null when `artifact_root`
    and every source are object-store URIs (credentials from `env_from_secrets`)."""
    mount_path: str = "/var/lib/domainllm"
    """Where it is mounted; the pods' `DOMAINLLM_HOME`."""

    @field_validator("claim")
    @classmethod
    def _claim(cls, value: str | None) -> str | None:
        return value if value is None else _dns_subdomain(value)


class CacheVolume(Section):
    claim: str | None = None
    """PersistentVolumeClaim for caches kept between pods (Hugging Face, Triton, DeepSpeed ops).
    Null: an emptyDir of `size` per pod."""
    size: str = "50Gi"
    mount_path: str = "/cache"

    @field_validator("claim")
    @classmethod
    def _claim(cls, value: str | None) -> str | None:
        return value if value is None else _dns_subdomain(value)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        return quantity(value)


class Interconnect(Section):
    """How the pods of a multi-node training job talk to each other. `rdma`: InfiniBand or RoCE
    through the NVIDIA network operator (an RDMA device resource per pod, a secondary Multus
    network, `IPC_LOCK` for pinned memory, NCCL told which HCA to use); `host_network`: the
    pods use the node's network (and its RDMA devices) directly; `none`: the pod network."""

    mode: Literal["none", "rdma", "host_network"] = "none"
    rdma_resource: str = "rdma/rdma_shared_device_a"
    """Extended resource of the RDMA devices (the RDMA shared device plugin's name, or an
    SR-IOV resource such as `nvidia.com/mlnxnics`)."""
    rdma_per_pod: int = Field(default=1, ge=1)
    networks: str | None = None
    """Multus network attachments (`k8s.v1.cni.cncf.io/networks`), e.g. `ib-sriov,ib-sriov`."""
    nccl_ib_hca: str | None = None
    """`NCCL_IB_HCA`, e.g. `mlx5` or `=mlx5_0,mlx5_1`."""
    nccl_ib_gid_index: int | None = Field(default=None, ge=0)
    """`NCCL_IB_GID_INDEX` (RoCE v2: usually 3)."""
    nccl_socket_ifname: str | None = None
    """`NCCL_SOCKET_IFNAME` for NCCL's bootstrap, e.g. `eth0` or `^lo,docker`."""
    nccl_debug: Literal["VERSION", "WARN", "INFO", "TRACE"] | None = "WARN"


class TrainingJobs(Section):
    """Stages with `nodes > 1` run as one multi-node job."""

    backend: Literal["indexed_job", "jobset", "trainjob"] = "indexed_job"
    """`indexed_job`: a batch/v1 Job with one pod per node plus a headless Service (nothing to
    install in the cluster). `jobset` (the JobSet controller, jobset.x-k8s.io/v1alpha2) and
    `trainjob` (Kubeflow Trainer v2.1, `trainjob_runtime`) for clusters that run them: the
    launcher creates, follows and judges all three the same way."""
    rdzv_port: int = Field(default=29500, ge=1, le=65535)
    """torchrun's rendezvous port on pod 0."""
    gang: Literal["none", "kueue", "volcano"] = "none"
    """Gang scheduling: `kueue` (the Job is created suspended in `queue`) or `volcano` (a
    PodGroup of all nodes, scheduler `volcano`), so no job holds GPUs while half-scheduled."""
    queue: str | None = None
    """Kueue LocalQueue (required with `gang: kueue`) or Volcano queue."""
    admission_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    """How long a job may wait suspended for Kueue to admit it (counted from its `Suspended`
    condition, so a reattaching attempt keeps the job's own clock). Past it the attempt fails
    as retryable and the suspended job is deleted: a queue that admits nothing for hours is a
    quota problem a person should see, not a task that waits forever."""
    trainjob_runtime: str = "torch-distributed"
    """Kubeflow Trainer (ClusterTrainingRuntime) the TrainJob refers to."""

    @model_validator(mode="after")
    def _kueue_needs_a_queue(self) -> TrainingJobs:
        if self.gang == "kueue" and not self.queue:
            raise ValueError("gang: kueue needs `queue`: the Kueue LocalQueue the job is submitted to (e.g. "
                             "`queue: gpu-training`); without the kueue.x-k8s.io/queue-name label Kueue never admits "
                             "the suspended job and it would wait forever")  # fmt: skip
        if self.backend == "trainjob" and self.gang == "volcano":
            raise ValueError("backend: trainjob cannot take gang: volcano: a TrainJob's gang is its runtime's "
                             "(`podGroupPolicy` in the ClusterTrainingRuntime); use gang: kueue or none, or backend: "
                             "jobset or indexed_job for a Volcano PodGroup")  # fmt: skip
        return self


class KubernetesConfig(Section):
    namespace: str = "domainllm"
    """Namespace the pods and jobs are created in."""
    connection: str | None = None
    """Airflow connection id (type Kubernetes) for the API server. Null: the in-cluster service
    account when Airflow runs in the cluster, else `~/.kube/config`."""
    service_account: str = "domainllm-stage"
    """Service account of the stage pods (object-store access through workload identity goes here)."""
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    home: HomeVolume = HomeVolume()
    cache: CacheVolume = CacheVolume()
    shm_size: str = "8Gi"
    """`/dev/shm` as a memory emptyDir (data loaders, NCCL). It counts against the pod's memory."""
    spec_config_map: str = "domainllm-specs"
    """ConfigMap holding the pipeline specs, mounted at `spec_mount_path`; a stage runs the spec
    file of the same name from there (`domainllm k8s render` writes it for review)."""
    spec_mount_path: str = "/etc/domainllm/specs"
    env_from_secrets: tuple[str, ...] = ()
    """Secrets whose every key becomes an environment variable (object-store credentials,
    MLflow credentials, a judge's API key)."""
    secret_env: dict[str, SecretKey] = Field(default_factory=dict)
    """Single variables from one key of a Secret: `{JUDGE_API_KEY: {secret: judge, key: token}}`."""
    run_as_user: int = Field(default=10001, ge=1)
    run_as_group: int = Field(default=10001, ge=1)
    fs_group: int = Field(default=10001, ge=1)
    read_only_root_filesystem: bool = True
    """The image's filesystem read-only; `/tmp`, the cache and `/dev/shm` are writable."""
    untrusted_code_seccomp: str = "RuntimeDefault"
    """The pod seccomp profile of the stages that run generated code (`eval_code`, `label`).
    Their sandbox makes unprivileged user namespaces, which the container runtime's default
    profile forbids: with `RuntimeDefault` those stages refuse to run code and say so. Give
    `Localhost:<path>` (a profile on the nodes that allows unshare/clone with CLONE_NEWUSER)
    or `Unconfined` (the sandbox then applies its own seccomp filter to the code)."""

    @field_validator("untrusted_code_seccomp")
    @classmethod
    def _seccomp(cls, value: str) -> str:
        if value not in ("RuntimeDefault", "Unconfined") and not (value.startswith("Localhost:") and len(value) > len("Localhost:")):
            raise ValueError("give RuntimeDefault, Unconfined or Localhost:<profile path on the nodes>")
        return value
    cleanup: Literal["delete", "delete_succeeded", "keep"] = "delete_succeeded"
    """What happens to a finished pod or job: `delete_succeeded` keeps failed ones for
    inspection (until the next attempt replaces them)."""
    schedule_timeout_s: float = Field(default=600.0, gt=0)
    """A pod still unscheduled after this fails, naming what the cluster lacks."""
    startup_timeout_s: float = Field(default=900.0, gt=0)
    """A scheduled pod whose containers have not started after this fails (large image pulls)."""
    poll_interval_s: float = Field(default=2.0, gt=0)
    deferrable: bool = True
    """Stage tasks hand the wait for their pod or job to Airflow's triggerer (the worker slot is
    free while it runs; the task resumes on any worker to read the verdict and the log). False:
    the task waits in its worker and streams the log live, as the local launcher always does."""
    priority_class: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels on every pod and job (cost centre, team)."""
    annotations: dict[str, str] = Field(default_factory=dict)
    training: TrainingJobs = TrainingJobs()
    interconnect: Interconnect = Interconnect()
    serving: KubernetesServing = KubernetesServing()
    """How the `rollout` stage serves versions on the cluster (vLLM Deployments, the routes ConfigMap)."""

    @field_validator("namespace", "service_account", "spec_config_map")
    @classmethod
    def _names(cls, value: str) -> str:
        return _dns_label(value)

    @field_validator("image_pull_secrets", "env_from_secrets")
    @classmethod
    def _secret_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            _dns_subdomain(name)
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_names(cls, value: dict[str, SecretKey]) -> dict[str, SecretKey]:
        bad = sorted(k for k in value if not _ENV_NAME.match(k))
        if bad:
            raise ValueError(f"not environment variable names: {bad}")
        return value

    @field_validator("shm_size")
    @classmethod
    def _shm(cls, value: str) -> str:
        return quantity(value)

    @model_validator(mode="after")
    def _trainjob_env(self) -> KubernetesConfig:
        if self.training.backend == "trainjob" and self.env_from_secrets:
            raise ValueError(f"env_from_secrets {list(self.env_from_secrets)} cannot reach a TrainJob's trainer (Kubeflow "
                             f"Trainer's `trainer` has env, no envFrom): name each variable in secret_env ({{VAR: "
                             f"{{secret: ..., key: ...}}}}), or use training.backend jobset or indexed_job")  # fmt: skip
        return self
