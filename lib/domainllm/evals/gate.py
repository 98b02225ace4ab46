"""The promotion decision: a candidate passes only if, on every gated metric, it beats (or
does not fall behind) the current champion and the base by the spec's margins, with the
margin judged on a paired bootstrap confidence interval over per-item scores, so noise
neither promotes nor blocks a model. First-ever run (no champion): the base stands in."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from domainllm.evals.stats import Difference, paired_bootstrap


@dataclass(frozen=True)
class Rule:
    metric: str
    """A per-item score name, e.g. `perplexity.domain.loss`, `code.perl.pass_at_1`, `choice.general.correct`."""
    higher_is_better: bool
    kind: Literal["improve", "no_regression"] = "no_regression"
    """`improve`: the interval's low end must clear `margin`; `no_regression`: it must stay above -`margin`."""
    margin: float = 0.0
    relative: bool = False
    """`margin` as a fraction of the baseline's mean instead of an absolute amount."""
    against: tuple[str, ...] = ("champion", "base")


@dataclass(frozen=True)
class Check:
    rule: Rule
    against: str
    baseline_role: str
    """Who was compared: `champion`, or `base` standing in for a missing champion."""
    difference: Difference
    threshold: float
    passed: bool

    @property
    def reason(self) -> str:
        sign = "" if self.rule.higher_is_better else " (lower is better: sign flipped)"
        verb = "beats" if self.rule.kind == "improve" else "holds against"
        outcome = "passes" if self.passed else "fails"
        return (f"{self.rule.metric}: candidate {verb} {self.against}"
                f"{'' if self.baseline_role == self.against else f' ({self.baseline_role} standing in)'}? "
                f"gain {self.difference.mean:+.4g}, {self.difference.items} items, interval "
                f"[{self.difference.low:+.4g}, {self.difference.high:+.4g}]{sign}; needs low end "
                f"{'>' if self.rule.kind == 'improve' else '>='} {self.threshold + 0.0:+.4g}: {outcome}")


@dataclass
class Decision:
    passed: bool
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [*self.notes, *(c.reason for c in self.checks)]


def decide(rules: list[Rule], scores: dict[str, dict[str, list[float]]], *, confidence: float = 0.95,
           samples: int = 2000, seed: int = 0) -> Decision:  # fmt: skip
    """`scores[metric][role]`: per-item scores (the same items, in the same order) for the
    roles `candidate`, `champion` (absent on the first run) and `base`."""
    decision = Decision(passed=True)
    for rule in rules:
        if rule.metric not in scores or "candidate" not in scores[rule.metric]:
            raise ValueError(f"gate: metric {rule.metric!r} has no candidate scores; the suites produced: {sorted(scores)}")
        roles = scores[rule.metric]
        for against in rule.against:
            role = against if against in roles else ("base" if against == "champion" and "base" in roles else None)
            if role is None:
                raise ValueError(f"gate: metric {rule.metric!r} has no {against} scores to compare with")
            if role != against:
                decision.notes.append(f"no {against} yet: {rule.metric} is compared with the base instead")
            sign = 1.0 if rule.higher_is_better else -1.0
            cand = [sign * x for x in roles["candidate"]]
            base = [sign * x for x in roles[role]]
            diff = paired_bootstrap(cand, base, samples=samples, confidence=confidence, seed=seed)
            scale = abs(sum(base) / len(base)) if rule.relative else 1.0
            threshold = rule.margin * scale if rule.kind == "improve" else -rule.margin * scale
            passed = diff.low > threshold if rule.kind == "improve" else diff.low >= threshold
            decision.checks.append(Check(rule, against, role, diff, threshold, passed))
            decision.passed &= passed
    decision.notes = list(dict.fromkeys(decision.notes))
    return decision


def paired(by: dict[str, dict[str, dict[str, float]]], reference: str = "candidate") -> tuple[dict[str, dict[str, list[float]]], dict[str, int]]:
    """by[metric][role][item_id] -> (scores[metric][role] over the same items in the same order,
    items left out per metric because some model has no score for them: NaN, a judge reply that
    could not be read). ValueError when the roles were scored on different items than `reference`."""
    scores: dict[str, dict[str, list[float]]] = {}
    left_out: dict[str, int] = {}
    for metric, roles in sorted(by.items()):
        ids = sorted(roles[reference])
        for role, items in roles.items():
            if sorted(items) != ids:
                raise ValueError(f"{metric} was scored on different items for {role} and the {reference}; rerun the eval stages")
        scored = [i for i in ids if not any(math.isnan(items[i]) for items in roles.values())]
        if not scored:
            raise ValueError(f"{metric} has no item scored for every model (see the eval stage's `unscored` count)")
        left_out[metric] = len(ids) - len(scored)
        scores[metric] = {role: [items[i] for i in scored] for role, items in roles.items()}
    return scores, left_out
