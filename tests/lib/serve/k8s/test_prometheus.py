"""With `runtime.kubernetes.serving.prometheus_url`, a canary step reads the gateway pods'
counters from Prometheus instead of scraping them: the same numbers per pod as their own
/metrics text, and each pod's routes generation. Prometheus is a stand-in answering its HTTP
query API (`/api/v1/query`, instant vectors) from two real gateways' metrics, labelled by
pod and namespace as a Kubernetes scrape config labels them."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from prometheus_client.parser import text_string_to_metric_families

from domainllm.serve.canary import parse_metrics, step_delta
from domainllm.serve.gateway.exchange import Exchange
from domainllm.serve.gateway.metrics import GatewayMetrics
from domainllm.serve.k8s.traffic import _prometheus_generations, _prometheus_snapshot
from tests.json_reply import reply_json


def _pods() -> dict[str, GatewayMetrics]:
    pods = {"gw-a": GatewayMetrics(), "gw-b": GatewayMetrics()}
    for n, (pod, metrics) in enumerate(pods.items()):
        for i in range(10 + n * 7):
            route = "canary" if i % 3 == 0 else "stable"
            metrics.observe(Exchange(f"{pod}{i}", 0, "chat.completions", route, "2" if route == "canary" else "1", {},
                                     status=502 if i == 4 else 200, latency_ms=40.0 * (i + 1)))  # fmt: skip
        metrics.routes_generation.set(1796691241229 + n)
    return pods


def _serve(pods: dict[str, GatewayMetrics]):
    series = []
    for pod, metrics in pods.items():
        for family in text_string_to_metric_families(metrics.render()[0].decode()):
            for s in family.samples:
                series.append((s.name, {**s.labels, "pod": pod, "namespace": "ml", "job": "gateway"}, s.value))

    class Prometheus(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            query = parse_qs(urlparse(self.path).query)["query"][0]
            name, ns = re.fullmatch(r'(\w+)\{namespace="(\w+)"\}', query).groups()
            result = [{"metric": {"__name__": n, **labels}, "value": [1.0, str(v)]} for n, labels, v in series
                      if n == name and labels["namespace"] == ns]  # fmt: skip
            reply_json(self, 200, {"status": "success", "data": {"resultType": "vector", "result": result}})

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Prometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_prometheus_gives_each_pods_counters_and_generation() -> None:
    pods = _pods()
    server = _serve(pods)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        snapshot = _prometheus_snapshot(url, "ml")
        generations = _prometheus_generations(url, "ml")
    finally:
        server.shutdown()
    assert snapshot == {pod: parse_metrics(m.render()[0].decode()) for pod, m in pods.items()}
    assert generations == {"gw-a": 1796691241229, "gw-b": 1796691241230}
    total = step_delta({}, snapshot)
    assert total["canary"].requests == 4 + 6 and total["stable"].errors == 2  # both pods, added up
    assert total["canary"].quantile_bounds(0.95) is not None
