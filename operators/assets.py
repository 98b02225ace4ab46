"""The Airflow Asset the data flywheel emits when enough new preference pairs exist, and the
template filter the domain_llm DAG reads its event with."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset

PREFERENCES = Asset(name="domainllm-preferences", uri="domainllm://preferences")
"""One event per training round the flywheel asks for; its extra: `spec`, `run_id` (the run
whose DPO -> evals -> gate -> rollout reruns on the new pairs) and `version` (of the dataset)."""


def trigger_extra(events: Any, key: str, default: Any = "") -> Any:
    """`{{ triggering_asset_events | trigger_extra('run_id', '') }}`: the value from the
    newest event that triggered this run, or `default` for a run started by hand."""
    for asset in events or ():
        for event in reversed(list(events[asset])):
            value = (event.extra or {}).get(key)
            if value:
                return value
    return default
