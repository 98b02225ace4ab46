"""Launch requests: everything needed to run a stage command anywhere.

Operators build one from the spec; a launcher turns it into a local child process, a
Kubernetes pod, or a multi-node job (image, argv, env, resources, node count).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domainllm.spec import Spec
from domainllm.spec.runtime import NodePool, Resources
from domainllm.stages.names import STAGE_IMAGES

USER_ERROR = 2
"""Exit code of a stage that cannot succeed as configured (bad spec or input, a rejected
candidate): retrying the same command cannot help."""

PROGRAM = "domainllm"
CONTROL_IMAGE = "worker"
ATTEMPT_ENV = "DOMAINLLM_ATTEMPT_ID"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class LaunchRequest:
    name: str
    """What runs: a stage name, or `run-start` / `run-finish`."""
    run_id: str
    command: tuple[str, ...]
    """Argv starting with the `domainllm` program."""
    image: str
    """Logical image name (a key of `runtime.images`)."""
    image_ref: str | None
    """Container image for Kubernetes."""
    python: str | None
    """Interpreter for the local launcher; None means the launcher's own."""
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    node_pool: NodePool | None = None
    labels: dict[str, str] = field(default_factory=dict)
    grace_period_s: float = 30.0

    @property
    def attempt_id(self) -> str | None:
        return self.env.get(ATTEMPT_ENV)

    def thread_env(self) -> dict[str, str]:
        """Math-library threads from the CPU request, split between the processes, as a CPU
        limit would in a pod: two stages running side by side on a small machine must not
        each spin up a thread per core (oversubscribed, both slow down many times over)."""
        threads = str(max(1, self.resources.cpu_count() // self.resources.processes_per_node()))
        return {var: threads for var in THREAD_VARS if var not in self.env}


def _request(spec: Spec, name: str, run_id: str, image: str, command: list[str], attempt_id: str | None) -> LaunchRequest:
    runtime = spec.runtime
    resources = runtime.resources(name) if name in STAGE_IMAGES else Resources()
    env = dict(runtime.env)
    if attempt_id:
        env[ATTEMPT_ENV] = attempt_id
    return LaunchRequest(
        name=name,
        run_id=run_id,
        command=tuple(command),
        image=image,
        image_ref=runtime.images[image].ref,
        python=runtime.images[image].python,
        env=env,
        resources=resources,
        node_pool=runtime.node_pools.get(resources.node_pool) if resources.node_pool else None,
        labels={"domainllm/run-id": run_id, "domainllm/step": name, "domainllm/pipeline": spec.name},
        grace_period_s=runtime.grace_period_s,
    )


def stage_request(
    spec: Spec,
    spec_path: str,
    stage: str,
    run_id: str,
    *,
    force: bool = False,
    attempt_id: str | None = None,
    shard: int | None = None,
    reuse_shards: bool = False,
) -> LaunchRequest:
    """`domainllm stage run STAGE`; with `shard`, one shard task of a sharded stage; with
    `reuse_shards`, the collect task that follows the shard tasks."""
    command = [PROGRAM, "stage", "run", stage, "--spec", spec_path, "--run-id", run_id]
    if force:
        command.append("--force")
    name = stage
    if shard is not None:
        command += ["--shard", str(shard)]
        name = f"{stage}-shard{shard}"
    if reuse_shards:
        command.append("--reuse-shards")
    return _request(spec, name, run_id, STAGE_IMAGES[stage], command, attempt_id)


def run_control_request(spec: Spec, spec_path: str, action: str, run_id: str, status: str | None = None,
                        params: dict[str, str] | None = None) -> LaunchRequest:  # fmt: skip
    """`domainllm run start|finish` (opens/closes the pipeline's parent MLflow run)."""
    command = [PROGRAM, "run", action, "--spec", spec_path, "--run-id", run_id]
    if status:
        command += ["--status", status]
    for key, value in sorted((params or {}).items()):
        command += ["--param", f"{key}={value}"]
    return _request(spec, f"run-{action}", run_id, CONTROL_IMAGE, command, None)
