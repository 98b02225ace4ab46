"""Curriculum scores: lower is simpler and comes first."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_SYMBOL = re.compile(r"[^\w\s]")
_WORD = re.compile(r"\w+")


def simplicity_cost(text: str, kind: str) -> float:
    """Clean and simple first: short documents, few symbols, short words, prose before code.
    A cheap proxy for what a perplexity score would rank (no model needed)."""
    n = len(text)
    if n == 0:
        return 0.0
    words = _WORD.findall(text[:20_000])
    mean_word = sum(map(len, words)) / len(words) if words else 10.0
    symbols = len(_SYMBOL.findall(text[:20_000])) / min(n, 20_000)
    return math.log10(n + 10) + 5.0 * symbols + 0.15 * mean_word + (1.0 if kind == "code" else 0.0)


class PerplexityScorer:
    """Mean token negative log-likelihood of each document's beginning under a causal LM
    (lower = more predictable = earlier), in batches on the CPU or GPU at hand."""

    def __init__(self, model_path: str, max_tokens: int = 512, batch_size: int = 8) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(model_path)
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_path).eval()
        self.max_tokens, self.batch_size = max_tokens, batch_size

    def scores(self, texts: Sequence[str]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            batch = [t[: self.max_tokens * 8] or " " for t in texts[i : i + self.batch_size]]
            enc = self.tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=self.max_tokens)
            with self.torch.no_grad():
                logits = self.model(**enc).logits[:, :-1]
            target, mask = enc["input_ids"][:, 1:], enc["attention_mask"][:, 1:].float()
            nll = self.torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            per_doc = (nll * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.extend(float(x) for x in per_doc)
        return out


def costs(texts: Sequence[str], kinds: Sequence[str], order_by: str, scorer: PerplexityScorer | None = None) -> list[float]:
    if order_by == "perplexity" and scorer is not None:
        return scorer.scores(texts)
    if order_by == "length":
        return [float(len(t)) for t in texts]
    if order_by == "simplicity":
        return [simplicity_cost(t, k) for t, k in zip(texts, kinds, strict=True)]
    return [0.0] * len(texts)
