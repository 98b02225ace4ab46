"""DeepSpeed configs from the spec: every ZeRO stage and offload is accepted by DeepSpeed's
own config models, `auto` follows the planner, and impossible combinations are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domainllm.spec.training import DeepSpeedConfig, TrainingConfig
from domainllm.train.deepspeed_config import ZeroChoice, choose, deepspeed_config
from domainllm.train.plan import GiB, Hardware, ModelSize, options, recommend

CHOICES = [ZeroChoice(0), ZeroChoice(1), ZeroChoice(2), ZeroChoice(2, "cpu"), ZeroChoice(3), ZeroChoice(3, "cpu"),
           ZeroChoice(3, "cpu", "cpu"), ZeroChoice(3, "nvme", "nvme")]  # fmt: skip


@pytest.mark.parametrize("choice", CHOICES, ids=lambda c: c.label)
def test_generated_configs_are_valid_for_deepspeed(choice: ZeroChoice) -> None:
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    cfg = deepspeed_config(choice, bf16=True, nvme_path="/nvme")
    zero = DeepSpeedZeroConfig(**cfg["zero_optimization"])
    assert int(zero.stage) == choice.stage
    if choice.offload_optimizer != "none":
        assert str(getattr(zero.offload_optimizer.device, "value", zero.offload_optimizer.device)) == choice.offload_optimizer
    if choice.offload_params != "none":
        assert str(getattr(zero.offload_param.device, "value", zero.offload_param.device)) == choice.offload_params
        assert zero.offload_param.nvme_path is None or str(zero.offload_param.nvme_path) == "/nvme"
    assert cfg["bf16"] == {"enabled": True} and cfg["train_micro_batch_size_per_gpu"] == "auto"


def test_auto_follows_the_planner_and_explicit_settings_win() -> None:
    best = recommend(options(ModelSize.from_count(40e9), Hardware(80 * GiB, cpu_mem_bytes=2048 * GiB)))
    assert choose(DeepSpeedConfig(), best) == ZeroChoice(3, "cpu", "cpu")
    assert choose(DeepSpeedConfig(), None) == ZeroChoice(0)
    assert choose(DeepSpeedConfig(zero_stage=2, offload_optimizer="cpu"), best) == ZeroChoice(2, "cpu")
    assert ZeroChoice(3, "cpu", "cpu").label == "ZeRO-3 (optimizer on cpu, params on cpu)"


def test_impossible_combinations_and_defaults() -> None:
    with pytest.raises(ValidationError, match="offload_params needs zero_stage 3"):
        DeepSpeedConfig(zero_stage=2, offload_params="cpu")
    with pytest.raises(ValidationError, match="offload_optimizer needs zero_stage 1, 2 or 3"):
        DeepSpeedConfig(zero_stage=0, offload_optimizer="cpu")
    t = TrainingConfig()
    assert t.cpt.optim.learning_rate == 3e-5 and t.cpt.optim.warmup_ratio == 0.1 and t.cpt.optim.scheduler == "cosine"
    assert t.sft.assistant_only_loss and t.sft.packing and t.dpo.beta == 0.1 and t.cpt.lora is None
