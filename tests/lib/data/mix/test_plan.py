"""Repeat factors from source sizes: the ratio, weights, the upsampling cap, clear errors."""

from __future__ import annotations

import pytest

from domainllm.data.mix.plan import SourceSize, plan_mix
from domainllm.data.records import InputError
from domainllm.spec.mix import MixConfig


def sizes(**chars: tuple[str, int]) -> list[SourceSize]:
    return [SourceSize(name, group, n, max(n // 1000, 1)) for name, (group, n) in chars.items()]


def share(plan, srcs) -> float:
    dom = sum(plan.expected_chars[s.name] for s in srcs if s.domain == "domain")
    return dom / sum(plan.expected_chars.values())


def test_default_keeps_all_domain_text_and_samples_general_to_70_30() -> None:
    srcs = sizes(a=("domain", 700_000), b=("general", 5_000_000))
    plan = plan_mix(srcs, MixConfig())
    assert plan.repeat["a"] == 1.0 and plan.repeat["b"] == pytest.approx(0.06)
    assert share(plan, srcs) == pytest.approx(0.7)


def test_weights_and_short_general_text() -> None:
    srcs = sizes(a=("domain", 600_000), b=("domain", 400_000), g=("general", 100_000))
    plan = plan_mix(srcs, MixConfig(source_weights={"b": 2.0}, max_repeat=2.0))
    # general text repeated at most twice (200k chars) -> domain side shrinks to 200k * 0.7 / 0.3
    assert plan.repeat["g"] == pytest.approx(2.0)
    assert share(plan, srcs) == pytest.approx(0.7)
    assert plan.expected_chars["b"] / plan.expected_chars["a"] == pytest.approx(2 * 400 / 600)
    assert any("general text is short" in n for n in plan.notes)


def test_target_size_and_cap() -> None:
    srcs = sizes(a=("domain", 100_000), g=("general", 1_000_000))
    plan = plan_mix(srcs, MixConfig(target_chars=1_000_000, max_repeat=4.0))
    assert plan.repeat["a"] == 4.0 and any("capped" in n for n in plan.notes)  # 700k wanted from 100k
    assert plan.repeat["g"] == pytest.approx(0.3)


def test_errors_name_the_fix() -> None:
    with pytest.raises(InputError, match="add a source with `domain: general` or set data.mix.domain_fraction: 1.0"):
        plan_mix(sizes(a=("domain", 10)), MixConfig())
    assert plan_mix(sizes(a=("domain", 10)), MixConfig(domain_fraction=1.0)).repeat == {"a": 1.0}
    with pytest.raises(InputError, match="unknown or empty sources"):
        plan_mix(sizes(a=("domain", 10), g=("general", 10)), MixConfig(source_weights={"zzz": 2}))
