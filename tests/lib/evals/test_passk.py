"""pass@k: the unbiased estimator against values worked out by hand."""

from __future__ import annotations

import pytest

from domainllm.evals.passk import pass_at_k


def test_against_hand_computed_values() -> None:
    # n=10, c=3: pass@1 = 3/10; pass@5 = 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert pass_at_k([10], [3], 1) == [pytest.approx(0.3)]
    assert pass_at_k([10], [3], 5) == [pytest.approx(1 - 21 / 252)]
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6; all wrong: 0; all right: 1; fewer wrong than k: 1
    assert pass_at_k([4, 5, 5, 3], [1, 0, 5, 2], 2) == [pytest.approx(0.5), 0.0, 1.0, 1.0]


def test_bad_counts_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="pass@5 needs at least 5 samples per problem; problem 0 has 3"):
        pass_at_k([3], [1], 5)
    with pytest.raises(ValueError, match="problem 0 has 4 correct of 3 samples"):
        pass_at_k([3], [4], 1)
