"""Held-out perplexity: per-window losses add up to the group's token-weighted perplexity,
and equal a direct computation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from domainllm.evals.perplexity import perplexity, window_losses
from tests.lib.train.test_lora import tiny_base


def test_windows_and_groups(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tiny_base(tmp_path / "m")
    docs = [("domain", "sub hello { return 'world'; } " * 6), ("general", "my %h = (a => 1); " * 3), ("domain", "sub x {}")]
    wins = window_losses(str(tmp_path / "m"), docs, seq_len=16)
    assert {w.group for w in wins} == {"domain", "general"} and all(1 <= w.tokens <= 15 for w in wins)
    agg = perplexity(str(tmp_path / "m"), docs, seq_len=16)
    dom = [w for w in wins if w.group == "domain"]
    assert agg["domain"]["tokens"] == sum(w.tokens for w in dom)
    assert agg["domain"]["ppl"] == pytest.approx(math.exp(sum(w.nll for w in dom) / sum(w.tokens for w in dom)))
    # the first window, computed directly
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    ids = (tok(docs[0][1], add_special_tokens=False)["input_ids"] + [tok.eos_token_id])[:16]
    with torch.no_grad():
        loss = model(torch.tensor([ids]), labels=torch.tensor([ids])).loss
    assert dom[0].loss == pytest.approx(float(loss), rel=1e-5)
    # a token budget caps each group
    capped = window_losses(str(tmp_path / "m"), docs, seq_len=16, max_tokens=20)
    assert sum(w.tokens for w in capped if w.group == "domain") <= 20 + 15
