"""Facts about variant formats (not about machines: what a machine can run is probed, see
domainllm.capabilities and domainllm.serve.check)."""

from __future__ import annotations

from typing import Any

Variant = dict[str, Any]  # a variant's settings: the `quantize.variants` fields


def served_by_vllm(variant: Variant) -> bool:
    """vLLM serves compressed-tensors checkpoints; GGUF files are for llama.cpp and ollama."""
    return variant["format"] == "compressed-tensors"
