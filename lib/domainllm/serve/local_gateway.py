"""The local gateway as a supervised process that outlives the task that started it, like
the deployments behind it: recorded in `$DOMAINLLM_HOME/serve/<pipeline>/gateway.json`, its
routes in `routes.json` beside it.

Its secrets are made on first start, in `gateway/` beside them (mode 0600): the signing
secret of answer ids, the keys file (hashed keys), and `client-keys.json` with two keys made
for this machine: `user` (the demo's users) and `platform` (the rollout's probes). Locally
that file is how the demo and the rollout get a key; on Kubernetes the keys come from a
Secret and clients get theirs from the platform team."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from domainllm.env import home
from domainllm.serve.supervisor import alive, stop_group
from domainllm.serve.vllm_server import ServerError, healthy
from domainllm.spec.serving import GatewayPolicy

CLIENT_ROLES = ("user", "platform")


@dataclass(frozen=True)
class GatewayProcess:
    port: int
    supervisor_pid: int
    routes_path: str
    log_root: str
    log_path: str
    state_path: str
    admin_port: int = 0
    keys_dir: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def key(self, role: str = "platform") -> str:
        """This machine's client key of `role` (`user` or `platform`)."""
        return client_keys(Path(self.keys_dir))[role]


def client_keys(keys_dir: Path) -> dict[str, str]:
    return json.loads((keys_dir / "client-keys.json").read_text())


def ensure_secrets(keys_dir: Path) -> None:
    """The signing secret, the keys file and the local client keys, made once."""
    from domainllm.serve.gateway.auth import add_key
    from domainllm.serve.gateway.ids import new_signing_secret

    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    new_signing_secret(keys_dir / "signing.secret")
    clients = keys_dir / "client-keys.json"
    if clients.exists():
        return
    (keys_dir / "keys.json").unlink(missing_ok=True)  # keys nobody holds any more
    platform = {"requests_per_minute": 6000, "concurrency": 64, "requests_per_day": 10_000_000, "tokens_per_day": 10**10}
    made = {role: add_key(keys_dir / "keys.json", f"local-{role}", role=role, limits=platform if role == "platform" else None)
            for role in CLIENT_ROLES}  # fmt: skip
    fd = os.open(clients.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(made, fh)
    os.replace(clients.with_suffix(".tmp"), clients)


class LocalGateway:
    def __init__(self, pipeline: str, root: Path | None = None) -> None:
        self.root = root or home() / "serve" / pipeline
        self.root.mkdir(parents=True, exist_ok=True)
        self.record = self.root / "gateway.json"
        self.routes_path = self.root / "routes.json"
        self.keys_dir = self.root / "gateway"

    def get(self) -> GatewayProcess | None:
        try:
            gw = GatewayProcess(**json.loads(self.record.read_text()))
        except FileNotFoundError:
            return None
        if not alive(gw.supervisor_pid):
            self.record.unlink(missing_ok=True)
            return None
        return gw

    def ensure(self, log_root: str, *, port: int, policy: GatewayPolicy | None = None, scrub_pii: bool = True,
               timeout_s: float = 120) -> GatewayProcess:  # fmt: skip
        """The running gateway, or a new one on `port` (its admin app on `policy.admin_port`)."""
        policy = policy or GatewayPolicy()
        current = self.get()
        if current is not None and healthy(current.port) and current.admin_port == policy.admin_port:
            return current
        if current is not None:
            self.stop()
        ensure_secrets(self.keys_dir)
        policy_path = self.keys_dir / "policy.json"
        policy_path.write_text(policy.model_dump_json(indent=1))
        state, log_path = self.root / f"gateway-{int(time.time() * 1000)}.supervisor", self.root / "gateway.log"
        command = [sys.executable, "-m", "domainllm.serve.supervisor", "--state", str(state), "--", sys.executable, "-m", "domainllm",
                   "serve", "gateway", "--routes", str(self.routes_path), "--log-root", log_root, "--port", str(port),
                   "--keys", str(self.keys_dir / "keys.json"), "--signing-secret", str(self.keys_dir / "signing.secret"),
                   "--policy", str(policy_path), *([] if scrub_pii else ["--no-scrub-pii"])]  # fmt: skip
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not (healthy(port) and healthy(policy.admin_port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_group(proc.pid, 5)
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                raise ServerError(
                    f"the gateway did not start on ports {port} and {policy.admin_port} (is one taken?):\n{tail}"
                )
            time.sleep(0.2)
        gw = GatewayProcess(port, proc.pid, str(self.routes_path), log_root, str(log_path), str(state), policy.admin_port,
                            str(self.keys_dir))  # fmt: skip
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(gw)))
        os.replace(tmp, self.record)
        return gw

    def stop(self) -> None:
        gw = self.get()
        if gw is not None:
            stop_group(gw.supervisor_pid, 20)
            Path(gw.state_path).unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)
