"""Who the harvested data comes from: per principal (the API key's pseudonymous id), caps on
what one caller puts into a night's data, and flags for what looks like an attempt to steer
the model: one principal dominating the window's feedback, bursts of feedback, many prompts
that nearly repeat each other."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from domainllm.spec.flywheel import HarvestConfig

UNKNOWN = "unknown"
"""Requests logged before the gateway named principals."""


@dataclass
class PrincipalStats:
    requests: int = 0
    feedback: int = 0
    capped_requests: int = 0
    capped_feedback: int = 0
    flags: list[str] = field(default_factory=list)


def _day(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d")


class Caps:
    """Counts per principal and day as rows are harvested in order."""

    def __init__(self, cfg: HarvestConfig) -> None:
        self.cfg = cfg
        self.stats: dict[str, PrincipalStats] = defaultdict(PrincipalStats)
        self._requests: Counter = Counter()
        self._feedback: Counter = Counter()

    def take_request(self, principal: str, at: float) -> bool:
        return self._take(self._requests, self.cfg.max_requests_per_principal_per_day, principal, at, "requests")

    def take_feedback(self, principal: str, at: float) -> bool:
        return self._take(self._feedback, self.cfg.max_feedback_per_principal_per_day, principal, at, "feedback")

    def _take(self, taken: Counter, cap: int, principal: str, at: float, kind: str) -> bool:
        """Counts one more of `kind` for the principal's day; False once its cap is reached."""
        stats, key = self.stats[principal], (principal, _day(at))
        if taken[key] >= cap:
            setattr(stats, f"capped_{kind}", getattr(stats, f"capped_{kind}") + 1)
            return False
        taken[key] += 1
        setattr(stats, kind, getattr(stats, kind) + 1)
        return True


def _prompt_text(row: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in row["prompt"] if m.get("role") == "user")


def near_duplicates(texts: list[str], threshold: float = 0.8) -> int:
    """How many of `texts` nearly repeat another one of them (MinHash over word 3-grams)."""
    from datasketch import MinHash, MinHashLSH

    if len(texts) < 2:
        return 0
    lsh = MinHashLSH(threshold=threshold, num_perm=64)
    repeats = 0
    for i, text in enumerate(texts):
        words = text.lower().split()
        grams = {" ".join(words[j : j + 3]) for j in range(max(1, len(words) - 2))}
        m = MinHash(num_perm=64)
        m.update_batch([g.encode() for g in grams])
        if lsh.query(m):
            repeats += 1
        lsh.insert(str(i), m)
    return repeats


def flag(rows: list[dict[str, Any]], stats: dict[str, PrincipalStats], feedback_times: dict[str, list[float]],
         cfg: HarvestConfig) -> dict[str, list[str]]:  # fmt: skip
    """Principal -> why it is flagged (only flagged ones). Feedback counts as sent, capped or
    not: what was held back is evidence too."""
    flags: dict[str, list[str]] = defaultdict(list)
    total = sum(len(t) for t in feedback_times.values())
    for principal, times in feedback_times.items():
        if total >= cfg.dominant_min_feedback and len(times) / total > cfg.dominant_share:
            flags[principal].append(f"dominant: {len(times)} of the window's {total} feedback ({len(times) / total:.0%})")
        times = sorted(times)
        start = 0
        for end in range(len(times)):
            while times[end] - times[start] > cfg.burst_window_s:
                start += 1
            if end - start + 1 >= cfg.burst_feedback:
                flags[principal].append(f"burst: {end - start + 1} feedback within {cfg.burst_window_s:g} s")
                break
    by_principal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_principal[row["principal"]].append(row)
    for principal, its in by_principal.items():
        repeats = near_duplicates([_prompt_text(r) for r in its])
        if repeats >= cfg.near_duplicate_prompts:
            flags[principal].append(f"near-identical prompts: {repeats} of {len(its)} nearly repeat another")
    for principal, why in flags.items():
        stats.setdefault(principal, PrincipalStats()).flags = why
    return dict(flags)
