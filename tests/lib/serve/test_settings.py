"""The spec's serving settings become `vllm serve` arguments and environment."""

from __future__ import annotations

import pytest

from domainllm.serve.settings import vllm_args, vllm_env
from domainllm.spec.serving import ServingConfig


def test_defaults_and_every_setting() -> None:
    assert vllm_args(ServingConfig()) == ["--dtype", "auto", "--tensor-parallel-size", "1", "--gpu-memory-utilization", "0.9"]
    cfg = ServingConfig(max_model_len=4096, dtype="bfloat16", tensor_parallel_size=2, max_num_seqs=64, kv_cache_gib=4,
                        lora={"enabled": True, "max_loras": 2, "max_lora_rank": 16}, enforce_eager=True,
                        extra_args=("--seed", "1"))  # fmt: skip
    args = vllm_args(cfg, adapters={"perl": "/adapters/perl"})
    assert args == ["--dtype", "bfloat16", "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.9", "--max-model-len", "4096",
                    "--max-num-seqs", "64", "--enforce-eager", "--enable-lora", "--max-loras", "2", "--max-lora-rank", "16",
                    "--lora-modules", "perl=/adapters/perl", "--seed", "1"]  # fmt: skip
    assert vllm_env(cfg) == {"VLLM_CPU_KVCACHE_SPACE": "4"}


def test_adapters_need_lora_serving() -> None:
    with pytest.raises(ValueError, match="serving.lora.enabled is false"):
        vllm_args(ServingConfig(), adapters={"perl": "/a"})
