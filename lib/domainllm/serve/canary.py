"""Judging a canary step from the gateway's Prometheus metrics: snapshots of requests by
status and latency per route, the difference over the step, and a verdict with reasons
(error rate absolute and against the stable version, mean latency against the stable
version's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from domainllm.spec.serving import RolloutConfig


@dataclass(frozen=True)
class RouteStats:
    requests: float = 0.0
    errors: float = 0.0
    """5xx answers (the gateway's 502 for a backend that did not answer included)."""
    latency_sum_s: float = 0.0
    latency_count: float = 0.0

    def __sub__(self, other: RouteStats) -> RouteStats:
        return RouteStats(self.requests - other.requests, self.errors - other.errors, self.latency_sum_s - other.latency_sum_s,
                          self.latency_count - other.latency_count)  # fmt: skip

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_latency_s(self) -> float | None:
        return self.latency_sum_s / self.latency_count if self.latency_count else None


def parse_metrics(text: str) -> dict[str, RouteStats]:
    """Per route: totals from the gateway's /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    acc: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route")
            if route is None:
                continue
            a = acc.setdefault(route, {"requests": 0.0, "errors": 0.0, "sum": 0.0, "count": 0.0})
            if sample.name == "domainllm_gateway_requests_total":
                a["requests"] += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    a["errors"] += sample.value
            elif sample.name == "domainllm_gateway_request_seconds_sum":
                a["sum"] += sample.value
            elif sample.name == "domainllm_gateway_request_seconds_count":
                a["count"] += sample.value
    return {r: RouteStats(a["requests"], a["errors"], a["sum"], a["count"]) for r, a in acc.items()}


@dataclass(frozen=True)
class Verdict:
    passed: bool
    enough: bool
    """Whether the canary saw `min_requests` in the step."""
    reasons: list[str] = field(default_factory=list)
    canary: RouteStats = RouteStats()
    stable: RouteStats = RouteStats()


def judge(before: dict[str, RouteStats], after: dict[str, RouteStats], cfg: RolloutConfig, *, canary: str = "canary",
          stable: str = "stable") -> Verdict:  # fmt: skip
    c = after.get(canary, RouteStats()) - before.get(canary, RouteStats())
    s = after.get(stable, RouteStats()) - before.get(stable, RouteStats())
    if c.requests < cfg.min_requests:
        return Verdict(False, False, [f"canary served {c.requests:.0f} of the {cfg.min_requests} requests a step needs"], c, s)
    reasons, ok = [], True
    line = f"canary error rate {c.error_rate:.2%} ({c.errors:.0f}/{c.requests:.0f}) vs limit {cfg.max_error_rate:.2%}"
    ok &= c.error_rate <= cfg.max_error_rate
    reasons.append(f"{line}: {'ok' if c.error_rate <= cfg.max_error_rate else 'too high'}")
    if s.requests:
        allowed = s.error_rate + cfg.max_error_rate_increase
        ok &= c.error_rate <= allowed
        reasons.append(f"canary error rate vs stable {s.error_rate:.2%} + {cfg.max_error_rate_increase:.2%}: "
                       f"{'ok' if c.error_rate <= allowed else 'too high'}")  # fmt: skip
    if c.mean_latency_s is not None and s.mean_latency_s:
        ratio = c.mean_latency_s / s.mean_latency_s
        ok &= ratio <= cfg.max_latency_ratio
        reasons.append(f"canary mean latency {c.mean_latency_s * 1000:.1f} ms = {ratio:.2f}x stable's {s.mean_latency_s * 1000:.1f} ms "
                       f"vs limit {cfg.max_latency_ratio:.2f}x: {'ok' if ratio <= cfg.max_latency_ratio else 'too slow'}")  # fmt: skip
    return Verdict(bool(ok), True, reasons, c, s)
