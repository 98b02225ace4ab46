"""Traffic on a cluster: the route weights in the routes ConfigMap that every gateway replica
mounts, and the gateway's metrics from every replica, never one.

A new table is confirmed, not assumed: the kubelet refreshes a mounted ConfigMap within about
a minute, so `route` returns only once every ready gateway pod reports the table's
generation in its metrics (`routes_timeout_s`). Metrics come from each gateway pod, found
through the API (the gateway Service's selector) and scraped at its pod IP on the admin port
(which the chart's NetworkPolicy opens to the platform's pods; the API server's pod proxy
would need the control plane let in), or from Prometheus when
`runtime.kubernetes.serving.prometheus_url` is set. Each replica's
counters are kept apart (by pod and container restart), so a replica that restarts or
appears mid-step adds what it served and never subtracts."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from domainllm.k8s.api import Api
from domainllm.serve.canary import Snapshot, parse_metrics, routes_generation
from domainllm.serve.gateway.augment import AUGMENT_FILE
from domainllm.serve.gateway.routes import Route, new_generation, parse_routes, routes_document
from domainllm.serve.k8s.objects import routes_config_map
from domainllm.serve.traffic import RoutesNotApplied
from domainllm.spec import Spec

log = logging.getLogger(__name__)

ROUTES_FILE = "routes.json"
CONFLICT_RETRIES = 5


def _ready(pod: dict[str, Any]) -> bool:
    conds = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
    return conds.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp")


def replica_key(pod: dict[str, Any]) -> str:
    """A replica's counters live as long as its container: pod uid plus restarts."""
    restarts = sum(cs.get("restartCount", 0) for cs in (pod.get("status") or {}).get("containerStatuses") or [])
    return f"{pod['metadata']['name']}/{pod['metadata'].get('uid', '')}/{restarts}"


class ClusterTraffic:
    def __init__(self, spec: Spec, api: Api, *, timeout_s: float | None = None, poll_s: float = 2.0) -> None:
        self.spec, self.api, self.poll_s = spec, api, poll_s
        self.srv = spec.runtime.kubernetes.serving
        self.timeout_s = timeout_s if timeout_s is not None else spec.serving.rollout.routes_timeout_s
        self.admin_port = spec.serving.gateway.admin_port
        self.url = f"http://{self.srv.gateway_service}.{spec.runtime.kubernetes.namespace}.svc.cluster.local:{spec.serving.gateway_port}"

    # -- the ConfigMap ------------------------------------------------------------------------------

    def _write(self, update: dict[str, str | None]) -> None:
        """Sets (or with None removes) keys of the routes ConfigMap; optimistic: a write that
        raced another is redone on the fresh object."""
        from kubernetes.client.exceptions import ApiException

        name = self.srv.routes_config_map
        for _ in range(CONFLICT_RETRIES):
            current = self.api.read_config_map(name)
            data = dict((current or {}).get("data") or {})
            for key, value in update.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            try:
                if current is None:
                    self.api.create_config_map(routes_config_map(self.spec, data))
                else:
                    body = {**current, "data": data}
                    self.api.replace_config_map(name, body)
                return
            except ApiException as exc:
                if exc.status not in (409,):
                    raise
                log.info("configmap %s changed under us; writing again", name)
        raise RuntimeError(f"configmap {name}: still conflicting after {CONFLICT_RETRIES} writes")

    def read(self) -> tuple[list[Route], int, dict[str, Any] | None]:
        """(routes, generation, augment config) in the ConfigMap now."""
        data = (self.api.read_config_map(self.srv.routes_config_map) or {}).get("data") or {}
        routes, generation = parse_routes(data[ROUTES_FILE], f"configmap {self.srv.routes_config_map}") if ROUTES_FILE in data else ([], 0)
        augment = json.loads(data[AUGMENT_FILE]) if AUGMENT_FILE in data else None
        return routes, generation, augment

    def set_augment(self, config: dict[str, Any] | None) -> None:
        """Retrieval and intent routing for the gateway (`augment.json` beside the routes)."""
        self._write({AUGMENT_FILE: None if config is None else json.dumps(config, indent=1)})

    def route(self, routes: list[Route]) -> None:
        _, previous, _ = self.read()
        generation = new_generation(previous)
        self._write({ROUTES_FILE: routes_document(routes, generation)})
        self.wait_applied(generation)

    def wait_applied(self, generation: int) -> None:
        t0, behind = time.monotonic(), None
        while True:
            pods = self._gateway_pods()
            if not pods:
                raise RoutesNotApplied(f"no ready gateway pod behind service {self.srv.gateway_service} "
                                       f"(runtime.kubernetes.serving.gateway_service; is serving.enabled set in the chart?)")  # fmt: skip
            seen = self._generations(pods)
            behind = sorted(n for n, g in seen.items() if g < generation)
            if not behind:
                log.info("routes generation %d in use on all %d gateway pods (%.0fs)", generation, len(seen), time.monotonic() - t0)
                return
            if time.monotonic() - t0 > self.timeout_s:
                raise RoutesNotApplied(f"gateway pods {behind} did not take the new routes within {self.timeout_s:g}s "
                                       f"(serving.rollout.routes_timeout_s): is configmap {self.srv.routes_config_map} "
                                       f"mounted in them?")  # fmt: skip
            time.sleep(self.poll_s)

    # -- the gateway pods ---------------------------------------------------------------------------

    def _gateway_pods(self) -> list[dict[str, Any]]:
        svc = self.api.read_service(self.srv.gateway_service)
        if svc is None:
            raise RoutesNotApplied(f"no service {self.srv.gateway_service} in namespace {self.api.ns} "
                                   f"(runtime.kubernetes.serving.gateway_service)")  # fmt: skip
        selector = ",".join(f"{k}={v}" for k, v in sorted((svc["spec"].get("selector") or {}).items()))
        return [p for p in self.api.list_pods(selector) if _ready(p)]

    def _metrics(self, pod: dict[str, Any]) -> str:
        import httpx

        ip = (pod.get("status") or {}).get("podIP")
        try:
            reply = httpx.get(f"http://{ip}:{self.admin_port}/metrics", timeout=10)
            reply.raise_for_status()
        except httpx.HTTPError as exc:
            raise RoutesNotApplied(f"gateway pod {pod['metadata']['name']} ({ip}:{self.admin_port}) did not answer /metrics: "
                                   f"{type(exc).__name__}: {exc}") from None  # fmt: skip
        return reply.text

    def _scrape(self, pods: list[dict[str, Any]]) -> dict[str, str]:
        return {replica_key(p): self._metrics(p) for p in pods}

    def _generations(self, pods: list[dict[str, Any]]) -> dict[str, int]:
        """Pod name -> the routes generation it reports."""
        if self.srv.prometheus_url:
            by_pod = _prometheus_generations(self.srv.prometheus_url, self.api.ns)
            return {p["metadata"]["name"]: by_pod.get(p["metadata"]["name"], 0) for p in pods}
        return {p["metadata"]["name"]: routes_generation(self._metrics(p)) for p in pods}

    def snapshot(self) -> Snapshot:
        if self.srv.prometheus_url:
            return _prometheus_snapshot(self.srv.prometheus_url, self.api.ns)
        return {key: parse_metrics(text) for key, text in self._scrape(self._gateway_pods()).items()}


def _prometheus(url: str, query: str) -> list[dict[str, Any]]:
    import httpx

    reply = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query}, timeout=30)
    reply.raise_for_status()
    body = reply.json()
    if body.get("status") != "success":
        raise RuntimeError(f"prometheus at {url}: {body.get('error', body)}")
    return body["data"]["result"]


def _prometheus_generations(url: str, namespace: str) -> dict[str, int]:
    rows = _prometheus(url, f'domainllm_gateway_routes_generation{{namespace="{namespace}"}}')
    return {r["metric"].get("pod", ""): int(float(r["value"][1])) for r in rows}


def _prometheus_snapshot(url: str, namespace: str) -> Snapshot:
    """The same counters, per pod, as Prometheus last scraped them."""
    series: dict[str, list[str]] = {}
    for name in ("domainllm_gateway_requests_total", "domainllm_gateway_request_seconds_bucket",
                 "domainllm_gateway_request_seconds_sum", "domainllm_gateway_request_seconds_count"):  # fmt: skip
        for r in _prometheus(url, f'{name}{{namespace="{namespace}"}}'):
            labels = {k: v for k, v in r["metric"].items() if k not in ("__name__", "pod", "namespace", "instance", "job")}
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series.setdefault(r["metric"].get("pod", ""), []).append(f"{name}{{{text}}} {r['value'][1]}")
    return {pod: parse_metrics("\n".join(lines) + "\n") for pod, lines in series.items()}
