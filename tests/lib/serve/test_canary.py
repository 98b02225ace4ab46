"""A canary step judged from the gateway's metrics text: enough requests, error rate
absolute and against stable, mean latency against stable; only the step's difference counts."""

from __future__ import annotations

from domainllm.serve.canary import RouteStats, judge, parse_metrics
from domainllm.serve.gateway.exchange import Exchange
from domainllm.serve.gateway.metrics import GatewayMetrics
from domainllm.spec.serving import RolloutConfig

CFG = RolloutConfig(min_requests=20, max_error_rate=0.05, max_error_rate_increase=0.02, max_latency_ratio=1.5)


def _traffic(metrics: GatewayMetrics, route: str, version: str, n: int, *, errors: int = 0, latency_ms: float = 10) -> None:
    for i in range(n):
        metrics.observe(Exchange(f"{route}{i}", 0, "completions", route, version, {}, status=502 if i < errors else 200,
                                 latency_ms=latency_ms))  # fmt: skip


def _snapshot(metrics: GatewayMetrics) -> dict[str, RouteStats]:
    return parse_metrics(metrics.render()[0].decode())


def test_parse_and_judge_from_real_metrics_text() -> None:
    m = GatewayMetrics()
    _traffic(m, "stable", "1", 500, errors=5, latency_ms=10)  # before the step: not counted
    before = _snapshot(m)
    assert before["stable"].requests == 500 and before["stable"].errors == 5
    _traffic(m, "stable", "1", 90, latency_ms=10)
    _traffic(m, "canary", "2", 30, latency_ms=12)
    healthy = judge(before, _snapshot(m), CFG)
    assert healthy.passed and healthy.enough and healthy.canary.requests == 30 and healthy.stable.error_rate == 0
    assert any("1.20x stable" in r for r in healthy.reasons)

    before = _snapshot(m)
    _traffic(m, "stable", "1", 90, latency_ms=10)
    _traffic(m, "canary", "2", 30, errors=3, latency_ms=12)
    broken = judge(before, _snapshot(m), CFG)
    assert not broken.passed and any("10.00% (3/30)" in r and "too high" in r for r in broken.reasons)

    before = _snapshot(m)
    _traffic(m, "canary", "2", 30, latency_ms=40)
    _traffic(m, "stable", "1", 30, latency_ms=10)
    slow = judge(before, _snapshot(m), CFG)
    assert not slow.passed and any("too slow" in r for r in slow.reasons)


def test_too_little_traffic_is_not_a_verdict() -> None:
    v = judge({}, {"canary": RouteStats(requests=5)}, CFG)
    assert not v.enough and not v.passed and "5 of the 20 requests" in v.reasons[0]
