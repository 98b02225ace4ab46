"""Generation with fixed decoding: greedy is deterministic, sampling gives n seeded
completions, completions are cut at stop strings, chat prompts use the chat template."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainllm.demo.tokenizer import CHAT_TEMPLATE
from domainllm.evals.generate import cut_at_stop, generate
from domainllm.spec.evals import Decoding
from tests.lib.train.test_lora import tiny_base


def test_cut_at_stop() -> None:
    assert cut_at_stop("a\nsub b {}\nsub c", ["\nsub "]) == "a"
    assert cut_at_stop("abc", ["x", "c"]) == "ab" and cut_at_stop("abc", []) == "abc"


def test_greedy_sampling_and_chat_prompts(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tiny_base(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(tmp_path / "m")
    model = str(tmp_path / "m")
    greedy = Decoding(max_new_tokens=12)
    first = generate(model, ["sub hello {", "my %h"], greedy)
    assert len(first) == 2 and all(len(c) == 1 for c in first)
    assert generate(model, ["sub hello {", "my %h"], greedy) == first
    sampled = generate(model, ["sub hello {"], Decoding(temperature=1.0, n=3, max_new_tokens=12, seed=7))
    assert len(sampled[0]) == 3 and sampled == generate(model, ["sub hello {"], Decoding(temperature=1.0, n=3, max_new_tokens=12, seed=7))
    chat = generate(model, [[{"role": "user", "content": "hello"}]], greedy)
    assert len(chat) == 1
    with pytest.raises(ValueError, match="3 samples per prompt need sampling"):
        generate(model, ["x"], Decoding(n=3))
