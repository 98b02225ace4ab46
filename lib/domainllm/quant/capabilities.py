"""What each kind of variant needs, as plain functions over a variant's settings (a dict with
the `quantize.variants` fields), so the worker and the stages ask the same questions."""

from __future__ import annotations

from typing import Any

Variant = dict[str, Any]


def export_needs_gpu(variant: Variant) -> str | None:
    """Why exporting this variant needs a GPU, or None when a CPU does."""
    if variant["format"] == "compressed-tensors" and variant.get("method") == "awq":
        return "llmcompressor's AWQ needs a GPU (it keeps calibration activations in pinned accelerator memory)"
    return None


def vllm_cpu_serves(variant: Variant) -> str | None:
    """Why vLLM's CPU build cannot serve this variant, or None when it can."""
    if variant["format"] != "compressed-tensors":
        return "vLLM serves compressed-tensors variants; GGUF files are for llama.cpp and ollama"
    if variant.get("scheme") == "W8A16":
        return ("vLLM's CPU kernels serve 4-bit weight-only models (W4A16) and W8A8, not 8-bit weight-only "
                "(W8A16): it needs a GPU")
    return None


def served_by_vllm(variant: Variant) -> bool:
    return variant["format"] == "compressed-tensors"
