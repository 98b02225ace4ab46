"""How domain_llm reads the flywheel's Asset event in its templates: the newest event's
value, or the form's value for a run started by hand."""

from __future__ import annotations

from types import SimpleNamespace

from domainllm_operators.assets import PREFERENCES, trigger_extra


def test_the_newest_event_wins_and_a_manual_run_keeps_its_params() -> None:
    events = {PREFERENCES: [SimpleNamespace(extra={"run_id": "old", "spec": "a.yaml"}),
                            SimpleNamespace(extra={"run_id": "r1", "stages": ["dpo", "gate"]})]}  # fmt: skip
    assert trigger_extra(events, "run_id") == "r1"
    assert trigger_extra(events, "stages", ["all"]) == ["dpo", "gate"]
    assert trigger_extra(events, "spec", "form.yaml") == "a.yaml"  # the newest event that has it
    assert trigger_extra({}, "run_id", "") == "" and trigger_extra(None, "spec", "form.yaml") == "form.yaml"
