"""The local gateway as a supervised process that outlives the task that started it, like
the deployments behind it: recorded in `$DOMAINLLM_HOME/serve/<pipeline>/gateway.json`, its
routes in `routes.json` beside it."""

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


@dataclass(frozen=True)
class GatewayProcess:
    port: int
    supervisor_pid: int
    routes_path: str
    log_root: str
    log_path: str
    state_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalGateway:
    def __init__(self, pipeline: str, root: Path | None = None) -> None:
        self.root = root or home() / "serve" / pipeline
        self.root.mkdir(parents=True, exist_ok=True)
        self.record = self.root / "gateway.json"
        self.routes_path = self.root / "routes.json"

    def get(self) -> GatewayProcess | None:
        try:
            gw = GatewayProcess(**json.loads(self.record.read_text()))
        except FileNotFoundError:
            return None
        if not alive(gw.supervisor_pid):
            self.record.unlink(missing_ok=True)
            return None
        return gw

    def ensure(self, log_root: str, *, port: int, scrub_pii: bool = True, timeout_s: float = 120) -> GatewayProcess:
        """The running gateway, or a new one on `port`."""
        current = self.get()
        if current is not None and healthy(current.port):
            return current
        if current is not None:
            self.stop()
        state, log_path = self.root / f"gateway-{int(time.time() * 1000)}.supervisor", self.root / "gateway.log"
        command = [sys.executable, "-m", "domainllm.serve.supervisor", "--state", str(state), "--", sys.executable, "-m", "domainllm",
                   "serve", "gateway", "--routes", str(self.routes_path), "--log-root", log_root, "--port", str(port),
                   *([] if scrub_pii else ["--no-scrub-pii"])]  # fmt: skip
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not healthy(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_group(proc.pid, 5)
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                raise ServerError(f"the gateway did not start on port {port} (is the port taken?):\n{tail}")
            time.sleep(0.2)
        gw = GatewayProcess(port, proc.pid, str(self.routes_path), log_root, str(log_path), str(state))
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
