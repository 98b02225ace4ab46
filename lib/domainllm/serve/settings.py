"""The spec's `serving` settings as `vllm serve` arguments and environment: one source for
the local server process and the Kubernetes Deployment."""

from __future__ import annotations

from domainllm.spec.serving import ServingConfig


def vllm_args(cfg: ServingConfig, *, adapters: dict[str, str] | None = None) -> list[str]:
    """Arguments after `vllm serve MODEL` (host, port and served name are the launcher's).
    `adapters`: LoRA name -> adapter folder, served beside the base model."""
    args = ["--dtype", cfg.dtype, "--tensor-parallel-size", str(cfg.tensor_parallel_size),
            "--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]  # fmt: skip
    if cfg.max_model_len:
        args += ["--max-model-len", str(cfg.max_model_len)]
    if cfg.max_num_seqs:
        args += ["--max-num-seqs", str(cfg.max_num_seqs)]
    if cfg.enforce_eager:
        args.append("--enforce-eager")
    if adapters and not cfg.lora.enabled:
        raise ValueError("LoRA adapters given but serving.lora.enabled is false")
    if cfg.lora.enabled:
        args += ["--enable-lora", "--max-loras", str(cfg.lora.max_loras), "--max-lora-rank", str(cfg.lora.max_lora_rank)]
        if adapters:
            args += ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    return [*args, *cfg.extra_args]


def vllm_env(cfg: ServingConfig) -> dict[str, str]:
    # The CPU build sizes its KV cache from this (GiB); the CUDA build ignores it.
    return {"VLLM_CPU_KVCACHE_SPACE": str(cfg.kv_cache_gib)}
