"""The paired bootstrap: a clear improvement has an interval above zero, noise straddles it."""

from __future__ import annotations

import random

import pytest

from domainllm.evals.stats import paired_bootstrap


def test_a_real_gain_is_above_zero_and_noise_straddles_it() -> None:
    rng = random.Random(0)
    base = [rng.random() for _ in range(200)]
    better = [b + 0.05 + rng.gauss(0, 0.02) for b in base]
    d = paired_bootstrap(better, base)
    assert d.low > 0 and d.mean == pytest.approx(0.05, abs=0.01) and d.items == 200
    noisy = [b + rng.gauss(0, 0.05) for b in base]
    n = paired_bootstrap(noisy, base)
    assert n.low < 0 < n.high
    assert paired_bootstrap(better, base) == d  # seeded: the same decision every time


def test_identical_scores_and_bad_input() -> None:
    d = paired_bootstrap([1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same items: 2 candidate vs 3 baseline"):
        paired_bootstrap([1, 0], [1, 0, 1])
