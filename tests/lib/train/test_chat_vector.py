"""Chat Vector: cpt + (chat - base), exactly, on every parameter but the skipped ones."""

from __future__ import annotations

from pathlib import Path

import torch

from domainllm.train.chat_vector import apply_chat_vector
from tests.lib.train.test_lora import tiny_base


def _perturbed(src: Path, dst: Path, seed: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)


def test_adds_the_chat_delta_and_skips_embeddings(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    tiny_base(tmp_path / "base")
    _perturbed(tmp_path / "base", tmp_path / "chat", 1)  # "chat model" = base + chat tuning
    _perturbed(tmp_path / "base", tmp_path / "cpt", 2)  # "CPT model" = base + domain training
    report = apply_chat_vector(str(tmp_path / "cpt"), str(tmp_path / "chat"), str(tmp_path / "base"),
                               str(tmp_path / "out"), scale=1.0)  # fmt: skip
    load = lambda name: AutoModelForCausalLM.from_pretrained(tmp_path / name).state_dict()  # noqa: E731
    out, cpt, chat, base = load("out"), load("cpt"), load("chat"), load("base")
    assert report.added > 0 and not report.missing and not report.skipped_shape
    for name in out:
        if "embed_tokens" in name or "lm_head" in name:
            assert torch.equal(out[name], cpt[name])
        else:
            assert torch.allclose(out[name], cpt[name] + chat[name] - base[name], atol=1e-6), name
