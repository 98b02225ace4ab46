"""A rollout that fails for a reason other than its verdict leaves the safe state: stable-only
routes, the canary stopped, and the `augment.json` the stable version served with. Faults
injected: the gateway's metrics cannot be read, and MLflow is down when a step is recorded.
The gateway is the real one; the deployments are stand-ins answering at once (the rollout's
moves on real vLLM: test_rollout.py)."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from domainllm.serve.gateway.routes import Route, write_routes
from domainllm.serve.local import Deployment
from domainllm.serve.local_gateway import LocalGateway
from domainllm.serve.rollout import prober, roll_out
from domainllm.serve.traffic import LocalTraffic
from domainllm.serve.vllm_server import free_port
from domainllm.spec.serving import GatewayPolicy, RolloutConfig
from domainllm.stages.rollout import restored_on_failure
from tests.lib.serve.gateway.helpers import stub_backend


class StandInDeployments:
    """What roll_out asks of the deployments, each one the stand-in server."""

    api_key = None

    def __init__(self, base_url: str) -> None:
        self.port = int(base_url.split(":")[2].split("/")[0])
        self.running: dict[str, Deployment] = {}
        self.stopped: list[str] = []

    def get(self, name: str) -> Deployment | None:
        return self.running.get(name)

    def start(self, name: str, version: str, model_path: str, *, adapters=None) -> Deployment:
        self.running[name] = Deployment(name, version, model_path, "tiny", self.port, 0, "", "", time.time())
        return self.running[name]

    def stop(self, name: str) -> None:
        self.running.pop(name, None)
        self.stopped.append(name)

    def rename(self, old: str, new: str) -> Deployment:
        self.running[new] = dataclasses.replace(self.running.pop(old), name=new)
        return self.running[new]


CFG = RolloutConfig(steps=(50, 100), min_requests=2, probe_requests=4, step_timeout_s=20, max_latency_ratio=1000.0,
                    max_p95_latency_ratio=1000.0)  # moves, not latency


@pytest.fixture
def serving(tmp_path: Path):
    with stub_backend() as (backend, _):
        gateways = LocalGateway("tiny", root=tmp_path / "serve")
        gw = gateways.ensure(str(tmp_path / "logs"), port=free_port(), policy=GatewayPolicy(admin_port=free_port()))
        deployments = StandInDeployments(backend)
        deployments.start("stable", "1", "/models/1")
        write_routes(Path(gw.routes_path), [Route("stable", deployments.get("stable").base_url, "1", 100)])
        try:
            yield gw, deployments
        finally:
            gateways.stop()


def _routes(gw) -> list[str]:
    return [r["name"] for r in json.loads(Path(gw.routes_path).read_text())["routes"]]


def test_unreadable_metrics_leave_stable_alone(serving) -> None:
    gw, deployments = serving
    blind = dataclasses.replace(gw, admin_port=free_port())  # nothing answers there
    with pytest.raises(urllib.error.URLError):
        roll_out("2", "/models/2", cfg=CFG, deployments=deployments, traffic=LocalTraffic(blind), probe=prober(gw.url, gw.key("platform"), "tiny", ["hi"], max_tokens=2))
    assert _routes(gw) == ["stable"] and deployments.get("canary") is None and deployments.stopped == ["canary"]


def test_mlflow_down_while_a_step_is_recorded_leaves_stable_and_its_augment(serving, tmp_path: Path) -> None:
    gw, deployments = serving
    augment = Path(gw.routes_path).with_name("augment.json")
    augment.write_text('{"served": "by stable"}')

    def record(step) -> None:  # what the stage does with each step: MLflow is down
        raise MlflowException("API request to http://mlflow:5000 failed: connection refused")

    with pytest.raises(MlflowException), restored_on_failure(augment):
        augment.write_text('{"served": "by the canary"}')  # the stage writes the new version's retrieval first
        roll_out("2", "/models/2", cfg=CFG, deployments=deployments, traffic=LocalTraffic(gw), probe=prober(gw.url, gw.key("platform"), "tiny", ["hi"], max_tokens=2),
                 on_step=record)  # fmt: skip
    assert _routes(gw) == ["stable"] and deployments.get("canary") is None
    assert augment.read_text() == '{"served": "by stable"}'
    fresh = tmp_path / "none.json"
    with pytest.raises(RuntimeError), restored_on_failure(fresh):
        fresh.write_text("{}")
        raise RuntimeError("killed")
    assert not fresh.exists()  # it was not there before
    # and the gateway serves from the stable version throughout
    promoted = roll_out("3", "/models/3", cfg=CFG, deployments=deployments, traffic=LocalTraffic(gw), probe=prober(gw.url, gw.key("platform"), "tiny", ["hi"], max_tokens=2))
    assert promoted.result == "promoted" and _routes(gw) == ["stable"] and deployments.get("stable").version == "3"
