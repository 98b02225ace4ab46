"""How often each source's documents enter the mix, from the sizes of the sources."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from domainllm.data.records import InputError
from domainllm.spec.mix import MixConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSize:
    name: str
    domain: str
    """"domain" or "general"."""
    chars: int
    docs: int


@dataclass(frozen=True)
class MixPlan:
    repeat: dict[str, float]
    """Source -> expected copies of each of its documents (0.5: half of them, 2.0: twice)."""
    expected_chars: dict[str, float]
    notes: tuple[str, ...] = ()


def plan_mix(sizes: list[SourceSize], cfg: MixConfig) -> MixPlan:
    unknown = sorted(set(cfg.source_weights) - {s.name for s in sizes})
    if unknown:
        raise InputError(f"data.mix.source_weights names unknown or empty sources {unknown}; "
                         f"sources with data: {[s.name for s in sizes]}")  # fmt: skip
    f = cfg.domain_fraction
    weight = {s.name: cfg.source_weights.get(s.name, 1.0) for s in sizes}
    mass = {g: sum(weight[s.name] * s.chars for s in sizes if s.domain == g) for g in ("domain", "general")}
    if f > 0 and mass["domain"] == 0:
        raise InputError("data.mix: no domain text reached the mix (every domain source is empty or weighted 0)")
    if f < 1 and mass["general"] == 0:
        raise InputError(f"data.mix.domain_fraction is {f} but no general text reached the mix: add a source "
                         "with `domain: general` or set data.mix.domain_fraction: 1.0")  # fmt: skip
    notes: list[str] = []
    if cfg.target_chars is not None:
        target = {"domain": f * cfg.target_chars, "general": (1 - f) * cfg.target_chars}
    elif f in (0.0, 1.0):
        group = "domain" if f == 1.0 else "general"
        target = {group: mass[group], "domain" if group == "general" else "general": 0.0}
    else:
        target = {"domain": mass["domain"], "general": mass["domain"] * (1 - f) / f}
        if target["general"] > cfg.max_repeat * mass["general"]:
            # not enough general text even repeated max_repeat times: shrink the domain side instead
            target["general"] = cfg.max_repeat * mass["general"]
            target["domain"] = target["general"] * f / (1 - f)
            notes.append(f"general text is short: repeated up to {cfg.max_repeat}x and domain text sampled down "
                         "to keep the ratio")  # fmt: skip
    repeat: dict[str, float] = {}
    for s in sizes:
        m = mass[s.domain]
        r = target[s.domain] * weight[s.name] / m if m else 0.0
        if r > cfg.max_repeat:
            notes.append(f"source {s.name}: needs {r:.2f} copies, capped at max_repeat {cfg.max_repeat}")
            r = cfg.max_repeat
        repeat[s.name] = r
    expected = {s.name: repeat[s.name] * s.chars for s in sizes}
    for note in notes:
        log.warning("mix: %s", note)
    return MixPlan(repeat, expected, tuple(notes))
