"""Per-principal limits, kept in the gateway's memory (one replica's share: with several
replicas behind a Service each counts its own traffic): a token bucket for requests per
minute, requests in flight, and daily (UTC) quotas of requests, tokens and feedback. A
refused request is answered 429 with `retry-after`; nothing waits in a queue."""

from __future__ import annotations

import time
from dataclasses import dataclass

from domainllm.serve.gateway.auth import Principal


class LimitExceeded(Exception):
    def __init__(self, message: str, code: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.code, self.retry_after_s = code, retry_after_s


@dataclass
class _State:
    tokens: float
    stamp: float
    in_flight: int = 0
    day: int = -1
    requests: int = 0
    used_tokens: int = 0
    feedback: int = 0


def _seconds_to_midnight(now: float) -> float:
    return 86400 - now % 86400


class Limiter:
    def __init__(self) -> None:
        self._states: dict[str, _State] = {}
        self.used: dict[str, int | None] = {}
        """Request id -> the tokens its answer used, set by the handler for `finish`."""

    def _state(self, p: Principal, now: float) -> _State:
        st = self._states.get(p.principal)
        if st is None:
            st = self._states[p.principal] = _State(tokens=float(p.limits.requests_per_minute), stamp=now)
        rate = p.limits.requests_per_minute / 60
        st.tokens = min(float(p.limits.requests_per_minute), st.tokens + (now - st.stamp) * rate)
        st.stamp = now
        day = int(now // 86400)
        if st.day != day:
            st.day, st.requests, st.used_tokens, st.feedback = day, 0, 0, 0
        return st

    def _spend_rate(self, p: Principal, st: _State) -> None:
        if st.tokens < 1:
            wait = (1 - st.tokens) / (p.limits.requests_per_minute / 60)
            raise LimitExceeded(f"rate limit: {p.limits.requests_per_minute} requests per minute for this key; retry in {wait:.0f} s",
                                "rate_limit_exceeded", wait)  # fmt: skip
        st.tokens -= 1

    def start(self, p: Principal, reserve_tokens: int, now: float | None = None) -> None:
        """Admits a request (or raises LimitExceeded); `finish` must follow."""
        now = now if now is not None else time.time()
        st = self._state(p, now)
        lim = p.limits
        if st.in_flight >= lim.concurrency:
            raise LimitExceeded(f"this key already has {lim.concurrency} requests in flight (its limit); retry when one ends",
                                "concurrency_limit_exceeded", 1)  # fmt: skip
        if st.requests >= lim.requests_per_day:
            raise LimitExceeded(f"daily quota: {lim.requests_per_day} requests for this key (resets at 00:00 UTC)",
                                "insufficient_quota", _seconds_to_midnight(now))  # fmt: skip
        if st.used_tokens + reserve_tokens > lim.tokens_per_day:
            raise LimitExceeded(f"daily quota: {lim.tokens_per_day} tokens for this key, {max(0, lim.tokens_per_day - st.used_tokens)} "
                                f"left, this request may use {reserve_tokens} (lower max_tokens or n)", "insufficient_quota",
                                _seconds_to_midnight(now))  # fmt: skip
        self._spend_rate(p, st)
        st.in_flight += 1
        st.requests += 1
        st.used_tokens += reserve_tokens

    def finish(self, p: Principal, reserved: int, used: int | None) -> None:
        """Ends a request: its reservation becomes what it used, when that is known."""
        st = self._states[p.principal]
        st.in_flight = max(0, st.in_flight - 1)
        if used is not None:
            st.used_tokens = max(0, st.used_tokens - reserved + used)

    def feedback(self, p: Principal, now: float | None = None) -> None:
        now = now if now is not None else time.time()
        st = self._state(p, now)
        if st.feedback >= p.limits.feedback_per_day:
            raise LimitExceeded(f"daily quota: {p.limits.feedback_per_day} feedback for this key (resets at 00:00 UTC)",
                                "insufficient_quota", _seconds_to_midnight(now))  # fmt: skip
        self._spend_rate(p, st)
        st.feedback += 1
