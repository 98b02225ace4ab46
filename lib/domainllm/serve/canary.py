"""Judging a canary step. From the gateway's Prometheus metrics (summed over every replica):
requests by status and the latency histogram per route, the difference over the step, and
checks with reasons: error rate absolute and against the stable version, mean and p95
latency against the stable version's. From the request log (`quality.py`): the users' down-
vote rate per version and, with a judge, its scores on a sample of live answers. Each check
needs its minimum sample on both sides and allows a margin; a quality check without enough
votes or scores says so and does not block."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from domainllm.spec.serving import RolloutConfig

REQUESTS = "domainllm_gateway_requests_total"
LATENCY = "domainllm_gateway_request_seconds"
GENERATION = "domainllm_gateway_routes_generation"


@dataclass(frozen=True)
class RouteStats:
    requests: float = 0.0
    errors: float = 0.0
    """5xx answers (the gateway's 502 for a backend that did not answer included)."""
    latency_sum_s: float = 0.0
    latency_count: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()
    """The latency histogram: (upper bound in s, cumulative count), rising, `inf` last."""

    def _combine(self, other: RouteStats, sign: int) -> RouteStats:
        mine, theirs = dict(self.buckets), dict(other.buckets)
        bounds = sorted(set(mine) | set(theirs))
        return RouteStats(self.requests + sign * other.requests, self.errors + sign * other.errors,
                          self.latency_sum_s + sign * other.latency_sum_s, self.latency_count + sign * other.latency_count,
                          tuple((b, mine.get(b, 0.0) + sign * theirs.get(b, 0.0)) for b in bounds))  # fmt: skip

    def __sub__(self, other: RouteStats) -> RouteStats:
        return self._combine(other, -1)

    def __add__(self, other: RouteStats) -> RouteStats:
        return self._combine(other, 1)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_latency_s(self) -> float | None:
        return self.latency_sum_s / self.latency_count if self.latency_count else None

    def quantile_s(self, q: float) -> float | None:
        """The q-quantile of latency, interpolated within its bucket as Prometheus's
        `histogram_quantile` does; the highest finite bound when it falls in the last one."""
        found = self._bucket(q)
        if found is None:
            return None
        lower, upper, below, count = found
        if math.isinf(upper):
            return lower
        rank = q * self.buckets[-1][1]
        return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 0.0)

    def quantile_bounds(self, q: float) -> tuple[float, float] | None:
        """The bucket the q-quantile lies in: (lower, upper) bound in s; all the histogram can tell."""
        found = self._bucket(q)
        return None if found is None else (found[0], found[1])

    def _bucket(self, q: float) -> tuple[float, float, float, float] | None:
        """(lower bound, upper bound, count below, count up to the upper bound) of the q-quantile's bucket."""
        if not self.buckets or self.buckets[-1][1] <= 0:
            return None
        rank, lower, below = q * self.buckets[-1][1], 0.0, 0.0
        for bound, count in self.buckets:
            if count >= rank:
                return lower, bound, below, count
            lower, below = bound, count
        return lower, math.inf, below, below


def parse_metrics(text: str) -> dict[str, RouteStats]:
    """Per route: totals from one gateway replica's /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    acc: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route")
            if route is None:
                continue
            a = acc.setdefault(route, {"requests": 0.0, "errors": 0.0, "sum": 0.0, "count": 0.0, "buckets": {}})
            if sample.name == REQUESTS:
                a["requests"] += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    a["errors"] += sample.value
            elif sample.name == f"{LATENCY}_sum":
                a["sum"] += sample.value
            elif sample.name == f"{LATENCY}_count":
                a["count"] += sample.value
            elif sample.name == f"{LATENCY}_bucket":
                le = float(sample.labels["le"])
                a["buckets"][le] = a["buckets"].get(le, 0.0) + sample.value
    return {r: RouteStats(a["requests"], a["errors"], a["sum"], a["count"], tuple(sorted(a["buckets"].items())))
            for r, a in acc.items()}  # fmt: skip


def routes_generation(text: str) -> int:
    """The routes table generation a replica reports (0: none)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == GENERATION:
                return int(sample.value)
    return 0


Snapshot = dict[str, dict[str, RouteStats]]
"""Replica (a gateway pod's container) -> route -> its counters."""


def step_delta(before: Snapshot, after: Snapshot) -> dict[str, RouteStats]:
    """Per route: what every replica served between two snapshots. A replica new since
    `before` (scaled up, restarted: its counters start at zero) counts in full; one gone by
    `after` is left out, never subtracted."""
    return total([{route: stats - before.get(replica, {}).get(route, RouteStats()) for route, stats in routes.items()}
                  for replica, routes in after.items()])  # fmt: skip


def total(snapshots: list[dict[str, RouteStats]]) -> dict[str, RouteStats]:
    """Per route: the sum over replicas."""
    out: dict[str, RouteStats] = {}
    for snap in snapshots:
        for route, stats in snap.items():
            out[route] = out.get(route, RouteStats()) + stats
    return out


@dataclass(frozen=True)
class VersionQuality:
    """What users and the judge said about one version's answers over a step."""

    votes: int = 0
    downs: int = 0
    principals: int = 0
    """Distinct users who voted."""
    judged: int = 0
    judge_mean: float | None = None
    """Mean judge score (0-1) of the sampled answers that were graded."""

    @property
    def down_rate(self) -> float | None:
        return self.downs / self.votes if self.votes else None


@dataclass(frozen=True)
class Quality:
    canary: VersionQuality = VersionQuality()
    stable: VersionQuality = VersionQuality()


@dataclass(frozen=True)
class Verdict:
    passed: bool
    enough: bool
    """Whether the canary saw `min_requests` in the step."""
    reasons: list[str] = field(default_factory=list)
    canary: RouteStats = RouteStats()
    stable: RouteStats = RouteStats()
    quality: Quality | None = None


def judge(before: dict[str, RouteStats], after: dict[str, RouteStats], cfg: RolloutConfig, *, canary: str = "canary",
          stable: str = "stable", quality: Quality | None = None) -> Verdict:  # fmt: skip
    c = after.get(canary, RouteStats()) - before.get(canary, RouteStats())
    s = after.get(stable, RouteStats()) - before.get(stable, RouteStats())
    if c.requests < cfg.min_requests:
        return Verdict(False, False, [f"canary served {c.requests:.0f} of the {cfg.min_requests} requests a step needs"], c, s, quality)
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
    cp, sp = c.quantile_s(0.95), s.quantile_s(0.95)
    if cp is not None and sp and s.latency_count >= cfg.min_requests:
        # judged on the buckets, not the interpolation: too slow only when the canary's p95 is
        # surely above the limit (its bucket's lower bound over the limit times the stable's upper bound)
        (c_low, _), (_, s_high) = c.quantile_bounds(0.95), s.quantile_bounds(0.95)  # type: ignore[misc]
        slow = c_low > cfg.max_p95_latency_ratio * s_high
        ok &= not slow
        reasons.append(f"canary p95 latency {cp * 1000:.1f} ms = {cp / sp:.2f}x stable's {sp * 1000:.1f} ms vs limit "
                       f"{cfg.max_p95_latency_ratio:.2f}x (histogram buckets: canary above {c_low * 1000:g} ms, stable "
                       f"at most {s_high * 1000:g} ms): {'too slow' if slow else 'ok'}")  # fmt: skip
    elif cp is not None:
        reasons.append(f"canary p95 latency {cp * 1000:.1f} ms; stable served {s.latency_count:.0f} of the "
                       f"{cfg.min_requests} requests a comparison needs: not compared")  # fmt: skip
    if quality is not None:
        passed, lines = judge_quality(quality, cfg)
        ok &= passed
        reasons += lines
    return Verdict(bool(ok), True, reasons, c, s, quality)


def judge_quality(q: Quality, cfg: RolloutConfig) -> tuple[bool, list[str]]:
    """The users' down-votes and the judge's scores, canary against stable."""
    ok, lines = True, []
    c, s = q.canary, q.stable
    if c.votes < cfg.min_votes or s.votes < cfg.min_votes:
        lines.append(f"feedback: canary {c.votes} and stable {s.votes} votes of the {cfg.min_votes} each a comparison "
                     f"needs: not compared")  # fmt: skip
    else:
        worse = c.down_rate - s.down_rate  # type: ignore[operator]
        passed = worse <= cfg.max_down_rate_increase
        ok &= passed
        lines.append(f"feedback down-rate canary {c.down_rate:.1%} ({c.downs}/{c.votes} from {c.principals} users) vs stable "
                     f"{s.down_rate:.1%} ({s.downs}/{s.votes}) + {cfg.max_down_rate_increase:.1%}: "
                     f"{'ok' if passed else 'too many down-votes'}")  # fmt: skip
    if c.judge_mean is None and s.judge_mean is None:
        return ok, lines
    if c.judged < cfg.judge_min_scored or s.judged < cfg.judge_min_scored:
        lines.append(f"judge: canary {c.judged} and stable {s.judged} answers scored of the {cfg.judge_min_scored} each a "
                     f"comparison needs: not compared")  # fmt: skip
        return ok, lines
    drop = s.judge_mean - c.judge_mean  # type: ignore[operator]
    passed = drop <= cfg.judge_max_drop
    lines.append(f"judge score canary {c.judge_mean:.3f} (n={c.judged}) vs stable {s.judge_mean:.3f} (n={s.judged}) - "
                 f"{cfg.judge_max_drop:.3f}: {'ok' if passed else 'worse answers'}")  # fmt: skip
    return ok and passed, lines
