"""`serving`: how vLLM serves a model version (locally from the serving environment, on
Kubernetes as a Deployment with the same settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domainllm.spec.base import Section


class LoraServing(Section):
    enabled: bool = False
    """Serve a base model plus LoRA adapters (`--enable-lora`) instead of a merged model."""
    max_loras: int = Field(default=4, ge=1)
    """Adapters in one batch."""
    max_lora_rank: int = Field(default=64, ge=1)


class ServingConfig(Section):
    max_model_len: int | None = Field(default=None, ge=16)
    """Context length served; default: the model's."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """GPUs: the share of memory vLLM takes for weights and KV cache."""
    kv_cache_gib: int = Field(default=1, ge=1)
    """vLLM's CPU build: KV-cache size in GiB (`VLLM_CPU_KVCACHE_SPACE`)."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """GPUs per replica."""
    max_num_seqs: int | None = Field(default=None, ge=1)
    """Concurrent sequences per replica; default: vLLM's."""
    lora: LoraServing = LoraServing()
    extra_args: tuple[str, ...] = ()
    """Further `vllm serve` arguments, passed as they are."""
    start_timeout_s: float = Field(default=600, gt=0)
    """How long a server may take to answer /health."""
