"""A model and its tokenizer for evaluation: on the GPU when there is one, in eval mode."""

from __future__ import annotations

from typing import Any


def load_for_eval(model_path: str, **tokenizer_kwargs: Any):
    """(model, tokenizer, device)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_path, **tokenizer_kwargs)
    model = AutoModelForCausalLM.from_pretrained(model_path).to(device).eval()
    return model, tokenizer, device
