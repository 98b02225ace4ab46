"""The rollout stage's bookkeeping (its serving is tested end to end in
tests/e2e/test_data_flywheel_dag.py): the `production` alias moves and remembers the version it
left; LoRA serving needs an adapter with its base in the registry's copy."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from domainllm.evals.registry import PREVIOUS_PRODUCTION, PRODUCTION, by_alias
from domainllm.spec import load_spec
from domainllm.stages.rollout import lora_parts, set_production
from domainllm.stages.runner import StageError
from domainllm.tracking import experiment_id


def test_production_moves_and_remembers_the_previous_version(tiny_spec: Path) -> None:
    spec = load_spec(tiny_spec)
    experiment_id(spec)  # the tracking URI
    client = mlflow.MlflowClient()
    client.create_registered_model(spec.name)
    for _ in range(2):
        client.create_model_version(spec.name, source="/models/x", tags={"domainllm.run_id": "r1"})
    assert set_production(spec, "1") is None and by_alias(spec, PRODUCTION).version == "1"
    assert set_production(spec, "1") is None  # again: nothing moves
    assert set_production(spec, "2") == "1"
    assert by_alias(spec, PRODUCTION).version == "2" and by_alias(spec, PREVIOUS_PRODUCTION).version == "1"
    assert by_alias(spec, PRODUCTION).run_id == "r1"


def test_lora_serving_needs_an_adapter_and_its_base(tiny_spec: Path, tmp_path: Path) -> None:
    spec = load_spec(tiny_spec)
    full = tmp_path / "full"
    full.mkdir()
    with pytest.raises(StageError, match="version 3 has no LoRA adapter with its base model in the registry"):
        lora_parts(spec, "3", str(full))
    (full / "adapter").mkdir()
    (full / "adapter" / "adapter_config.json").write_text("{}")
    (full / "base").mkdir()
    (full / "base" / "config.json").write_text("{}")
    assert lora_parts(spec, "3", str(full)) == (str(full / "base"), {"tiny": str(full / "adapter")})
