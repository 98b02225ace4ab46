"""compressed-tensors variants with llmcompressor's one-shot quantization: round-to-nearest
(no data), GPTQ or AWQ (calibrated on domain documents). vLLM serves what this writes."""

from __future__ import annotations

import logging
from typing import Any

from domainllm.quant.formats import Variant

log = logging.getLogger(__name__)


def recipe(variant: Variant, ignore: list[str]) -> Any:
    """The llmcompressor modifier for a variant."""
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    scheme, method = variant["scheme"], variant.get("method", "rtn")
    if method == "awq":
        from llmcompressor.modifiers.awq import AWQModifier

        return AWQModifier(config_groups={"group_0": _weight_only(variant, symmetric=False)}, ignore=ignore)
    modifier = GPTQModifier if method == "gptq" else QuantizationModifier
    if scheme in ("W8A8", "FP8_DYNAMIC"):  # llmcompressor's presets: channel-wise weights, per-token activations
        return modifier(targets="Linear", scheme=scheme, ignore=ignore)
    return modifier(config_groups={"group_0": _weight_only(variant, symmetric=True)}, ignore=ignore)


def _weight_only(variant: Variant, *, symmetric: bool) -> Any:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    bits = 4 if variant["scheme"] == "W4A16" else 8
    group = variant.get("group_size")
    weights = QuantizationArgs(num_bits=bits, type="int", symmetric=symmetric,
                               strategy="group" if group else "channel", group_size=group)  # fmt: skip
    return QuantizationScheme(targets=["Linear"], weights=weights)


def check_group_size(model: Any, variant: Variant, ignore: list[str]) -> None:
    """A group size must divide every quantized layer's input size: say which layer does not,
    before llmcompressor fails deep inside."""
    import torch

    group = variant.get("group_size")
    if variant["scheme"] not in ("W4A16", "W8A16") or not group:
        return
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name not in ignore and module.in_features % group:
            raise ValueError(f"group_size {group} does not divide {name}'s {module.in_features} input columns: "
                             f"set quantize.variants[{variant['name']}].group_size to a divisor of every layer's "
                             f"input size (or null for one scale per channel)")  # fmt: skip


def calibration_dataset(tokenizer: Any, texts: list[str], seq_len: int) -> Any:
    from datasets import Dataset

    ids = [tokenizer(t, truncation=True, max_length=seq_len, add_special_tokens=True)["input_ids"] for t in texts]
    ids = [i for i in ids if len(i) > 1]
    if not ids:
        raise ValueError("no calibration documents: the mix's training split has no domain text")
    return Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]})


def export(model_path: str, variant: Variant, out: str, *, ignore: list[str], texts: list[str], seq_len: int) -> None:
    """Quantizes the model at `model_path` and saves the compressed checkpoint (and tokenizer) to `out`."""
    import torch
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gpu, calibrated = torch.cuda.is_available(), variant.get("method", "rtn") != "rtn"
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    # llmcompressor's advice: calibrated methods load on the CPU and onload one layer at a
    # time to the GPU (sequential pipeline); data-free ones load straight onto the GPU
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto", device_map="auto" if gpu and not calibrated else None)
    if not gpu and model.dtype != torch.float32:
        model = model.float()  # CPUs: half-precision kernels are slow or missing
    check_group_size(model, variant, ignore)
    kwargs: dict[str, Any] = {}
    if calibrated:
        kwargs = {"dataset": calibration_dataset(tokenizer, texts, seq_len),
                  "num_calibration_samples": len(texts), "max_seq_length": seq_len}  # fmt: skip
    oneshot(model=model, recipe=recipe(variant, ignore), **kwargs)
    model.save_pretrained(out, save_compressed=True)
    tokenizer.save_pretrained(out)
