"""The gateway's Prometheus metrics, per route and model version: requests by status, latency
and time to first byte (streams). The rollout compares the canary with the stable version
on these."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from domainllm.serve.gateway.exchange import Exchange

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
"""Seconds. Fine where answers take (0.5-30 s): the rollout compares p95s bucket by bucket."""


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("route", "version")
        self.requests = Counter("domainllm_gateway_requests", "Requests by route, version and status.", (*labels, "status"),
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("domainllm_gateway_request_seconds", "Request latency at the gateway.", labels, buckets=BUCKETS,
                                 registry=self.registry)  # fmt: skip
        self.first_byte = Histogram("domainllm_gateway_first_byte_seconds", "Time to the first streamed byte.", labels,
                                    buckets=BUCKETS, registry=self.registry)  # fmt: skip
        self.intents = Counter("domainllm_gateway_intent_requests", "Requests by intent route and whether retrieval ran.",
                               ("intent", "retrieval"), registry=self.registry)  # fmt: skip
        self.retrieval = Histogram("domainllm_gateway_retrieval_seconds", "Embedding, routing and search time per request.",
                                   ("intent",), buckets=BUCKETS, registry=self.registry)  # fmt: skip
        self.feedbacks = Counter("domainllm_gateway_feedback", "Feedback received by rating.", ("rating",), registry=self.registry)
        self.refused = Counter("domainllm_gateway_refused", "Requests and feedback refused, by reason (invalid_api_key, "
                               "rate_limit_exceeded, request_too_large, unknown_request_id, ...).", ("reason",), registry=self.registry)  # fmt: skip
        self.log_lost = Gauge("domainllm_gateway_log_lost", "Exchanges queued for a log writer that died before writing them.",
                              registry=self.registry)  # fmt: skip
        self.log_writer_restarts = Gauge("domainllm_gateway_log_writer_restarts", "Times the log writer process died and was restarted.",
                                         registry=self.registry)  # fmt: skip
        self.log_pending_bytes = Gauge("domainllm_gateway_log_pending_bytes", "Bytes queued for the log writer.", registry=self.registry)
        self.routes_generation = Gauge("domainllm_gateway_routes_generation", "Generation of the routes table in use (the rollout "
                                       "waits until every replica reports the one it wrote).", registry=self.registry)  # fmt: skip
        self.log_dropped = Gauge("domainllm_gateway_log_dropped", "Exchanges not logged: the log writer was too far behind.",
                                 registry=self.registry)  # fmt: skip

    def observe(self, ex: Exchange) -> None:
        self.requests.labels(ex.route, ex.version, str(ex.status)).inc()
        self.latency.labels(ex.route, ex.version).observe(ex.latency_ms / 1000)
        if ex.first_byte_ms is not None:
            self.first_byte.labels(ex.route, ex.version).observe(ex.first_byte_ms / 1000)
        intent, retrieval = ex.extra.get("intent"), ex.extra.get("retrieval") or {}
        if intent is not None:
            self.intents.labels(intent, "on" if retrieval.get("on") else "off").inc()
            if retrieval.get("ms"):
                self.retrieval.labels(intent).observe(retrieval["ms"] / 1000)

    def feedback(self, rating: str | None) -> None:
        self.feedbacks.labels(rating or "none").inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
