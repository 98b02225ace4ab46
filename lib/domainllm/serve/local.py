"""Local deployments: named vLLM servers (`stable`, `canary`, ...) for one pipeline, each
under a supervisor in a session of its own, so they outlive the task that started them, as
a Kubernetes Deployment outlives the operator that applied it. Each is recorded in
`$DOMAINLLM_HOME/serve/<pipeline>/<name>.json` (written once the server is healthy); the
supervisor's state beside it says whether it is running, restarting or has given up."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from domainllm.env import home
from domainllm.serve.settings import vllm_args, vllm_env
from domainllm.serve.supervisor import alive, stop_group
from domainllm.serve.vllm_server import ServerError, VllmServer, healthy
from domainllm.spec.serving import ServingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    name: str
    version: str
    """The registered model version it serves."""
    model_path: str
    served_name: str
    """The model name clients ask for (the pipeline's name: the same for every deployment,
    so a gateway routes requests between them unchanged)."""
    port: int
    supervisor_pid: int
    log_path: str
    state_path: str
    """The supervisor's state file."""
    started_at: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


class LocalDeployments:
    api_key: str | None = None
    """Local servers take requests without a key (they listen on 127.0.0.1 only)."""

    def __init__(self, pipeline: str, cfg: ServingConfig, root: Path | None = None) -> None:
        self.pipeline, self.cfg = pipeline, cfg
        self.root = root or home() / "serve" / pipeline / "deployments"
        self.root.mkdir(parents=True, exist_ok=True)

    def _record(self, name: str) -> Path:
        return self.root / f"{name}.json"


    def get(self, name: str) -> Deployment | None:
        """The deployment if its supervisor is still there (a dead one's record is removed)."""
        path = self._record(name)
        try:
            deployment = Deployment(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        if not alive(deployment.supervisor_pid):
            path.unlink(missing_ok=True)
            return None
        return deployment

    def all(self) -> dict[str, Deployment]:
        names = sorted(p.stem for p in self.root.glob("*.json"))
        return {n: d for n in names if (d := self.get(n)) is not None}

    def supervisor_state(self, name: str) -> dict:
        deployment = self.get(name)
        try:
            return json.loads(Path(deployment.state_path).read_text()) if deployment else {}
        except (FileNotFoundError, ValueError):
            return {}

    def start(self, name: str, version: str, model_path: str, *, adapters: dict[str, str] | None = None) -> Deployment:
        """Serves `model_path` (with LoRA `adapters`: name -> folder, the base model) as
        deployment `name`; a healthy deployment of the same version is kept as it is, another
        one is replaced."""
        current = self.get(name)
        same = current is not None and current.version == version and current.model_path == model_path
        if same and healthy(current.port):
            log.info("deployment %s: version %s already serving on port %d", name, version, current.port)
            return current
        if current is not None:
            self.stop(name)
        # With adapters, clients ask for the adapter by the pipeline's name; the bare base is `<name>-base`.
        base_name = f"{self.pipeline}-base" if adapters else self.pipeline
        server = VllmServer(model_path, served_name=base_name, extra_args=vllm_args(self.cfg, adapters=adapters),
                            env=vllm_env(self.cfg), log_path=str(self.root / f"{name}.log"),
                            start_timeout_s=self.cfg.start_timeout_s)  # fmt: skip
        state = self.root / f"{name}-{int(time.time() * 1000)}.supervisor"  # its own for the server's life, whatever its name
        server.start(supervised_state=state)
        try:
            answer_once(server, self.pipeline)
        except ServerError:
            stop_group(server.proc.pid, grace_s=30)
            state.unlink(missing_ok=True)
            raise
        deployment = Deployment(name, version, model_path, self.pipeline, server.port, server.proc.pid, str(server.log_path), str(state),
                                time.time())  # fmt: skip
        self._write(deployment)
        log.info("deployment %s: version %s serving at %s", name, version, deployment.base_url)
        return deployment

    def _write(self, deployment: Deployment) -> None:
        tmp = self._record(deployment.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(deployment)))
        os.replace(tmp, self._record(deployment.name))

    def rename(self, old: str, new: str) -> Deployment:
        """The running deployment `old` is `new` from now on (a promoted canary becomes the
        stable one without a restart); a deployment already named `new` must be stopped first."""
        deployment = self.get(old)
        if deployment is None:
            raise KeyError(f"no running deployment {old!r}")
        if self.get(new) is not None:
            raise ValueError(f"deployment {new!r} is still running: stop it first")
        renamed = Deployment(**{**asdict(deployment), "name": new})
        self._write(renamed)
        self._record(old).unlink(missing_ok=True)
        return renamed

    def stop(self, name: str) -> None:
        deployment = self.get(name)
        if deployment is not None:
            stop_group(deployment.supervisor_pid, grace_s=30)
            Path(deployment.state_path).unlink(missing_ok=True)
            log.info("deployment %s: version %s stopped", name, deployment.version)
        self._record(name).unlink(missing_ok=True)


def answer_once(server: VllmServer, model: str) -> None:
    """A healthy server must also answer: one short completion (the first request is where a
    kernel this machine cannot run kills vLLM's worker); raises ServerError with what killed it."""
    import httpx

    try:
        reply = httpx.post(f"{server.base_url}/completions", json={"model": model, "prompt": "Hello", "max_tokens": 2},
                           timeout=server.start_timeout_s)  # fmt: skip
        if reply.status_code == 200:
            return
        seen = f"HTTP {reply.status_code}"
    except httpx.HTTPError as exc:
        seen = f"{type(exc).__name__}: {exc}"
    reason, _ = server.explain(seen)
    raise ServerError(f"vLLM started {server.model_path} but could not answer a first request: {reason}\n{server.log_tail(15)}")
