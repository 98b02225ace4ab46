"""The optional model scorer with a real (tiny, locally trained) classifier."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from domainllm.data.quality import QualityFilter
from domainllm.spec.quality import ModelScorer, QualityConfig

pytestmark = pytest.mark.slow

GOOD = ["The module exports a function that parses configuration files and returns a hash reference.",
        "Use the strict pragma to catch undeclared variables at compile time in your scripts.",
        "This method returns the number of elements stored in the queue without removing them."]  # fmt: skip
SPAM = ["BUY NOW cheap pills best price click here limited offer!!!",
        "WIN WIN WIN free money click here now subscribe today!!!",
        "Hot deals hot deals click the link below for free prizes!!!"]  # fmt: skip


def _train_classifier(path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from domainllm.demo.tokenizer import train_tokenizer

    torch.manual_seed(0)
    tok = train_tokenizer((GOOD + SPAM) * 20, vocab_size=300, model_max_length=128)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                      num_labels=2, id2label={0: "spam", 1: "good"}, label2id={"spam": 0, "good": 1})  # fmt: skip
    model = LlamaForSequenceClassification(cfg)
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    texts, labels = GOOD + SPAM, [1] * len(GOOD) + [0] * len(SPAM)
    rng = random.Random(0)
    for _ in range(60):
        idx = rng.sample(range(len(texts)), 4)
        enc = tok([texts[i] for i in idx], padding=True, return_tensors="pt")
        loss = model(**enc, labels=torch.tensor([labels[i] for i in idx])).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    model.save_pretrained(path)
    tok.save_pretrained(path)


def test_scorer_removes_what_the_model_rejects(tmp_path: Path) -> None:
    _train_classifier(tmp_path / "clf")
    cfg = QualityConfig.model_validate(
        {"prose": {"min_words": None, "max_symbol_word_ratio": None, "top_ngram_max_char_fraction": {}},
         "scorer": {"path": str(tmp_path / "clf"), "label": "good", "min_score": 0.5}},
        context={"base_dir": tmp_path},
    )  # fmt: skip
    f = QualityFilter(cfg)
    rows = [{"text": t, "kind": "text", "source": "s"} for t in GOOD + SPAM]
    verdicts = f.batch(rows)
    assert [v is None for v in verdicts] == [True] * 3 + [False] * 3
    assert {v.reason for v in verdicts if v} == {"model_score"}


def test_unknown_label_is_a_clear_error(tmp_path: Path) -> None:
    _train_classifier(tmp_path / "clf")
    with pytest.raises(ValueError, match=r"label 'excellent' is not one of the model's labels \['good', 'spam'\]"):
        QualityFilter(QualityConfig(scorer=ModelScorer(path=str(tmp_path / "clf"), label="excellent")))
