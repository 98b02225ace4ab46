"""Is a difference between two models real? A paired bootstrap over per-item scores: the
same items resampled for both models, the confidence interval of the mean difference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    mean: float
    """Mean of candidate - baseline over the items."""
    low: float
    high: float
    """The confidence interval of that mean."""
    items: int


def paired_bootstrap(candidate: Sequence[float], baseline: Sequence[float], *, samples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> Difference:  # fmt: skip
    """Percentile bootstrap of the mean paired difference (items resampled with
    replacement, `samples` times; seeded, so a decision is reproducible)."""
    import numpy as np

    if len(candidate) != len(baseline):
        raise ValueError(f"paired scores need the same items: {len(candidate)} candidate vs {len(baseline)} baseline scores")
    if not candidate:
        raise ValueError("no items to compare")
    diff = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return Difference(float(diff.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)), len(diff))
