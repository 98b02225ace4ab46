"""Moving traffic and reading what it did, wherever the gateway runs: `Traffic` sets the route
weights and returns once every gateway replica uses them, and snapshots the request metrics
summed over all replicas. Here: the local gateway (one replica, its routes file). On
Kubernetes: `serve/k8s/traffic.py` (the routes ConfigMap, every gateway pod)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Protocol

from domainllm.serve.canary import Snapshot, parse_metrics, routes_generation
from domainllm.serve.gateway.routes import Route, write_routes
from domainllm.serve.local_gateway import GatewayProcess


class RoutesNotApplied(RuntimeError):
    """A gateway replica did not take the new routes in time."""


class Traffic(Protocol):
    url: str
    """The gateway's base URL for clients (probes)."""

    def route(self, routes: list[Route]) -> None:
        """Sets the weights; returns once every replica uses them (RoutesNotApplied if not)."""
        ...

    def snapshot(self) -> Snapshot:
        """Request metrics per replica and route (`canary.step_delta` adds up a step)."""
        ...


class LocalTraffic:
    def __init__(self, gateway: GatewayProcess, *, timeout_s: float = 30) -> None:
        self.gateway, self.timeout_s = gateway, timeout_s
        self.url = gateway.url

    def _metrics(self) -> str:
        with urllib.request.urlopen(f"{self.gateway.admin_url}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def route(self, routes: list[Route]) -> None:
        generation = write_routes(Path(self.gateway.routes_path), routes)
        deadline = time.monotonic() + self.timeout_s
        while routes_generation(self._metrics()) < generation:
            if time.monotonic() > deadline:
                raise RoutesNotApplied(f"the gateway did not take the new routes within {self.timeout_s:g}s; its log: "
                                       f"{self.gateway.log_path}")  # fmt: skip
            time.sleep(0.2)

    def snapshot(self) -> Snapshot:
        return {"gateway": parse_metrics(self._metrics())}
