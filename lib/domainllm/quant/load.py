"""Quantized variants as folders any transformers-based eval (or vLLM) loads like a model:
compressed-tensors variants as they are (transformers decompresses them through
compressed-tensors), GGUF files dequantized by transformers' GGUF reader into a temporary
folder, with the full model's tokenizer."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

GGUF_FILE = "model.gguf"


@contextlib.contextmanager
def evaluable(variant_dir: str, reference_dir: str) -> Iterator[str]:
    gguf = os.path.join(variant_dir, GGUF_FILE)
    if not os.path.exists(gguf):
        yield variant_dir
        return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="domainllm-gguf-") as tmp:
        model = AutoModelForCausalLM.from_pretrained(variant_dir, gguf_file=GGUF_FILE, dtype=torch.float32)
        # the weights are plain dequantized tensors now; only the GGUF marker stops saving them
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(reference_dir).save_pretrained(tmp)
        if os.path.exists(os.path.join(reference_dir, "generation_config.json")):  # EOS and decoding defaults
            shutil.copy(os.path.join(reference_dir, "generation_config.json"), tmp)
        del model
        yield tmp
