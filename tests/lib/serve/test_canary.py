"""A canary step judged from the gateway's metrics text (summed over replicas): enough
requests, error rate absolute and against stable, mean and p95 latency against stable; only
the step's difference counts. Quality: down-vote rates and judge scores, each with its
minimum sample and margin."""

from __future__ import annotations

from domainllm.serve.canary import Quality, RouteStats, VersionQuality, judge, parse_metrics, total
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


def test_p95_is_judged_on_the_histogram_of_every_replica() -> None:
    cfg = RolloutConfig(min_requests=20, max_latency_ratio=100.0, max_p95_latency_ratio=2.0)
    replicas = [GatewayMetrics(), GatewayMetrics()]  # the step's traffic split over two gateway pods
    before = total([_snapshot(m) for m in replicas])
    for m in replicas:
        _traffic(m, "stable", "1", 40, latency_ms=400)
        _traffic(m, "canary", "2", 38, latency_ms=400)
    _traffic(replicas[1], "canary", "2", 4, latency_ms=9000)  # a slow tail, on one replica only: 5% of the canary's 80
    after = total([_snapshot(m) for m in replicas])
    assert after["canary"].requests == 80 and after["stable"].requests == 80
    tail = judge(before, after, cfg)
    assert tail.passed, tail.reasons  # 4 slow of 80: p95 sits at the edge of the 0.5 s bucket
    _traffic(replicas[0], "canary", "2", 10, latency_ms=9000)
    slow = judge(before, total([_snapshot(m) for m in replicas]), cfg)
    assert not slow.passed and any("p95" in r and "too slow" in r for r in slow.reasons)
    assert slow.canary.quantile_bounds(0.95) == (7.5, 10.0) and slow.stable.quantile_bounds(0.95) == (0.25, 0.5)


def test_quality_needs_its_sample_and_a_margin() -> None:
    cfg = RolloutConfig(min_requests=1, min_votes=20, max_down_rate_increase=0.10, judge_min_scored=8, judge_max_drop=0.05)
    m = GatewayMetrics()
    _traffic(m, "stable", "1", 30)
    _traffic(m, "canary", "2", 30)
    after = _snapshot(m)
    few = judge({}, after, cfg, quality=Quality(VersionQuality(votes=5, downs=5), VersionQuality(votes=40, downs=4)))
    assert few.passed and any("5 and stable 40 votes of the 20" in r and "not compared" in r for r in few.reasons)
    close = judge({}, after, cfg, quality=Quality(VersionQuality(votes=40, downs=7, principals=9), VersionQuality(votes=40, downs=4)))
    assert close.passed and any("17.5%" in r and "ok" in r for r in close.reasons)  # 17.5% vs 10% + 10%
    worse = judge({}, after, cfg, quality=Quality(VersionQuality(votes=40, downs=12, principals=9), VersionQuality(votes=40, downs=4)))
    assert not worse.passed and any("too many down-votes" in r for r in worse.reasons)
    judged = Quality(VersionQuality(votes=0, judged=10, judge_mean=0.60), VersionQuality(votes=0, judged=10, judge_mean=0.70))
    lower = judge({}, after, cfg, quality=judged)
    assert not lower.passed and any("worse answers" in r for r in lower.reasons)
    thin = Quality(VersionQuality(judged=3, judge_mean=0.1), VersionQuality(judged=10, judge_mean=0.9))
    assert judge({}, after, cfg, quality=thin).passed
