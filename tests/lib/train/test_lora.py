"""LoRA: only the adapter trains, and the merged model computes what base + adapter compute."""

from __future__ import annotations

from pathlib import Path

import torch

from domainllm.spec.training import CheckpointConfig, CptConfig
from domainllm.train.cpt import train_cpt


def tiny_base(path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from domainllm.demo.tokenizer import train_tokenizer

    tok = train_tokenizer(["sub hello { return 'world'; } my %h = (a => 1);"] * 50, vocab_size=300, model_max_length=64)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)


def test_lora_trains_the_adapter_and_merges_exactly(tmp_path: Path) -> None:
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tiny_base(tmp_path / "base")
    rows = [{"input_ids": [(i * 7 + j) % 250 + 3 for j in range(32)], "position_ids": list(range(32))} for i in range(24)]
    ds = Dataset.from_list(rows)
    recipe = CptConfig(max_steps=6, micro_batch_size=4, eval_every_steps=3, lora={"r": 4, "alpha": 8, "dropout": 0.0},
                       optim={"learning_rate": 1e-2}, gradient_checkpointing=False)  # fmt: skip
    result = train_cpt(recipe, CheckpointConfig(every_steps=3), base_model=str(tmp_path / "base"), train_ds=ds,
                       eval_ds=ds.select(range(4)), seq_len=32, ckpt_dir=str(tmp_path / "ckpt"), fingerprint="x",
                       out_dir=str(tmp_path / "out"))  # fmt: skip
    assert result.counts["steps"] == 6
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    with_adapter = PeftModel.from_pretrained(base, tmp_path / "out" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.tensor([rows[0]["input_ids"]])
    with torch.no_grad():
        a, m = with_adapter(ids).logits, merged(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tmp_path / "base")(ids).logits
    assert torch.allclose(a, m, atol=1e-5)
    assert not torch.allclose(a, plain, atol=1e-4)  # the adapter learned something
