"""The gate's decision on per-item scores: a degraded candidate is rejected, a better one
accepted, noise decides nothing, and the first run compares with the base."""

from __future__ import annotations

import random

import pytest

from domainllm.evals.gate import Rule, decide, paired

RULES = [
    Rule("perplexity.domain.loss", higher_is_better=False, kind="improve", margin=0.01),
    Rule("perplexity.general.loss", higher_is_better=False, kind="no_regression", margin=0.05),
    Rule("choice.general.correct", higher_is_better=True, kind="no_regression", margin=0.05),
]


def _scores(domain_shift: float, general_shift: float, correct_flip: float, *, champion: bool = True) -> dict:
    rng = random.Random(0)
    dom = [3 + rng.random() for _ in range(300)]
    gen = [3 + rng.random() for _ in range(300)]
    right = [float(rng.random() < 0.6) for _ in range(300)]
    cand_right = [1.0 - r if rng.random() < correct_flip and r == 1.0 else r for r in right]
    roles = {"candidate": None, "base": None} | ({"champion": None} if champion else {})
    out = {}
    for metric, values, cand in (("perplexity.domain.loss", dom, [v + domain_shift + rng.gauss(0, 0.01) for v in dom]),
                                 ("perplexity.general.loss", gen, [v + general_shift + rng.gauss(0, 0.01) for v in gen]),
                                 ("choice.general.correct", right, cand_right)):  # fmt: skip
        out[metric] = {role: (cand if role == "candidate" else values) for role in roles}
    return out


def test_a_better_candidate_passes() -> None:
    d = decide(RULES, _scores(domain_shift=-0.2, general_shift=0.0, correct_flip=0.0))
    assert d.passed and all(c.passed for c in d.checks) and len(d.checks) == 6


def test_a_degraded_candidate_is_rejected_with_reasons() -> None:
    d = decide(RULES, _scores(domain_shift=-0.2, general_shift=0.5, correct_flip=0.4))  # forgot general ability
    assert not d.passed
    failed = {c.rule.metric for c in d.checks if not c.passed}
    assert failed == {"perplexity.general.loss", "choice.general.correct"}
    assert any("perplexity.general.loss: candidate holds against champion?" in r and r.endswith("fails") for r in d.reasons)


def test_no_improvement_is_not_promoted() -> None:
    d = decide(RULES, _scores(domain_shift=0.0, general_shift=0.0, correct_flip=0.0))
    assert not d.passed and [c.rule.metric for c in d.checks if not c.passed] == ["perplexity.domain.loss"] * 2


def test_first_run_compares_with_the_base() -> None:
    d = decide(RULES, _scores(domain_shift=-0.2, general_shift=0.0, correct_flip=0.0, champion=False))
    assert d.passed and {c.baseline_role for c in d.checks} == {"base"}
    assert "no champion yet: perplexity.domain.loss is compared with the base instead" in d.reasons


def test_missing_scores_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="metric 'code.perl.pass_at_1' has no candidate scores"):
        decide([Rule("code.perl.pass_at_1", higher_is_better=True)], _scores(0, 0, 0))


def test_items_are_paired_across_models_and_unscored_ones_left_out() -> None:
    nan = float("nan")
    by = {"judge.accuracy": {"candidate": {"b": 4.0, "a": 5.0, "c": nan}, "base": {"a": 3.0, "b": nan, "c": 2.0}},
          "choice.x.correct": {"candidate": {"q1": 1.0, "q2": 0.0}, "base": {"q2": 1.0, "q1": 1.0}}}  # fmt: skip
    scores, left_out = paired(by)
    assert scores["judge.accuracy"] == {"candidate": [5.0], "base": [3.0]} and left_out["judge.accuracy"] == 2
    assert scores["choice.x.correct"] == {"candidate": [1.0, 0.0], "base": [1.0, 1.0]} and left_out["choice.x.correct"] == 0
    with pytest.raises(ValueError, match="scored on different items for base"):
        paired({"m": {"candidate": {"a": 1.0}, "base": {"b": 1.0}}})
    with pytest.raises(ValueError, match="no item scored for every model"):
        paired({"m": {"candidate": {"a": nan}, "base": {"a": 1.0}}})
