"""Which DeepSpeed config a training stage runs with: the spec's explicit choice, or with
`zero_stage: auto` the planner's recommendation for this model on this job's GPUs. No GPU
exists here, so the GPU's properties are the one thing faked; the planner, DeepSpeed's
estimators and the config builder are real."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from domainllm.spec.training import DeepSpeedConfig
from domainllm.train.deepspeed_config import resolve

GiB = 1024**3


def llama_config_dir(path: Path, hidden: int, layers: int, intermediate: int) -> str:
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=128_256, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                num_attention_heads=hidden // 128, num_key_value_heads=8).save_pretrained(path)  # fmt: skip
    return str(path)


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    import torch

    from domainllm.train import deepspeed_config

    def fake(mem_gib: int, per_node: int, world: int) -> None:
        monkeypatch.setattr(deepspeed_config, "node_memory_bytes", lambda: 2048 * GiB)  # a GPU node's, not this VM's
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _: SimpleNamespace(total_memory=mem_gib * GiB))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(per_node))

    return fake


def test_explicit_stage_is_used_as_written() -> None:
    cfg = resolve(DeepSpeedConfig(zero_stage=3, offload_optimizer="nvme", offload_params="nvme", nvme_path="/nvme"),
                  "unused", seq_len=2048, micro_batch=1, bf16=True)  # fmt: skip
    assert cfg is not None and cfg["zero_optimization"]["stage"] == 3
    assert cfg["zero_optimization"]["offload_param"] == {"device": "nvme", "pin_memory": True, "nvme_path": "/nvme"}
    assert cfg["bf16"] == {"enabled": True}


def test_auto_is_off_on_cpu() -> None:
    assert resolve(DeepSpeedConfig(), "unused", seq_len=256, micro_batch=8, bf16=False) is None


def test_auto_follows_the_planner_on_gpus(gpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from domainllm.train import deepspeed_config

    small = llama_config_dir(tmp_path / "1b", hidden=2048, layers=16, intermediate=8192)  # ~1.2B
    gpus(80, 1, 1)
    assert resolve(DeepSpeedConfig(), small, seq_len=2048, micro_batch=1, bf16=True) is None  # plain training fits one GPU
    big = llama_config_dir(tmp_path / "70b", hidden=8192, layers=80, intermediate=28672)  # ~70B
    zero = lambda: resolve(DeepSpeedConfig(nvme_path=str(tmp_path / "no-nvme")), big, seq_len=4096, micro_batch=1,  # noqa: E731
                           bf16=True)["zero_optimization"]  # fmt: skip
    gpus(80, 8, 64)  # 8 nodes of 8 x 80 GiB: sharding alone is enough
    z = zero()
    assert z["stage"] == 3 and "offload_optimizer" not in z and "offload_param" not in z
    gpus(80, 8, 16)  # 2 nodes: the optimizer states go to CPU memory
    z = zero()
    assert z["stage"] == 3 and z["offload_optimizer"]["device"] == "cpu" and "offload_param" not in z
    gpus(80, 1, 1)  # one GPU: the parameters too
    z = zero()
    assert z["offload_optimizer"]["device"] == "cpu" and z["offload_param"]["device"] == "cpu"
    monkeypatch.setattr(deepspeed_config, "node_memory_bytes", lambda: 64 * GiB)
    with pytest.raises(RuntimeError, match="no ZeRO stage or offload fits"):
        resolve(DeepSpeedConfig(nvme_path=str(tmp_path / "no-nvme")), big, seq_len=4096, micro_batch=1, bf16=True)
