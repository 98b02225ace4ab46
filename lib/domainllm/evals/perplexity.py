"""Held-out perplexity per group (e.g. domain vs general): documents cut into context-length
windows, the token-weighted mean negative log-likelihood over each group. Comparing a model
with the one it started from shows what training taught (domain) and what it cost (general:
catastrophic forgetting)."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import fsspec

from domainllm.artifacts.fs import join
from domainllm.data.docs import iter_docs

log = logging.getLogger(__name__)


def heldout_documents(fs: fsspec.AbstractFileSystem, folder: str) -> list[tuple[str, str]]:
    """(domain, text) of the mix stage's held-out documents, sorted by id."""
    rows = list(iter_docs(fs, folder, columns=("id", "text", "source", "domain")))
    return [(r["domain"], r["text"]) for r in sorted(rows, key=lambda r: r["id"])]


def mix_heldout(fs: fsspec.AbstractFileSystem, mix_dir: str) -> list[tuple[str, str]]:
    from domainllm.data.mix.mixer import HELDOUT_DIR

    folder = join(mix_dir, HELDOUT_DIR)
    return heldout_documents(fs, folder) if fs.exists(folder) else []


@dataclass(frozen=True)
class WindowLoss:
    """One scored window: the per-item unit the gate's bootstrap resamples."""

    group: str
    index: int
    nll: float
    tokens: int

    @property
    def loss(self) -> float:
        return self.nll / self.tokens


def windows_of(tok, docs: Iterable[tuple[str, str]], seq_len: int, max_tokens: int) -> dict[str, list[list[int]]]:
    """Context-length windows per group, at most `max_tokens` scored tokens each (whole
    windows, documents in the given order); each document ends with EOS, as in training."""
    windows: dict[str, list[list[int]]] = defaultdict(list)
    budget: dict[str, int] = defaultdict(int)
    for group, text in docs:
        if budget[group] >= max_tokens:
            continue
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        for lo in range(0, len(ids) - 1, seq_len):
            window = ids[lo : lo + seq_len]
            if len(window) < 2 or budget[group] >= max_tokens:
                break
            windows[group].append(window)
            budget[group] += len(window) - 1
    return windows


def window_losses(model_path: str, docs: Iterable[tuple[str, str]], *, seq_len: int, max_tokens: int = 100_000,
                  batch_size: int = 8) -> list[WindowLoss]:  # fmt: skip
    """The summed NLL and token count of every window, per group, in a fixed order (the same
    documents give the same windows for every model sharing the tokenizer)."""
    import torch

    from domainllm.evals.models import load_for_eval

    model, tok, device = load_for_eval(model_path)
    out: list[WindowLoss] = []
    for group, wins in sorted(windows_of(tok, docs, seq_len, max_tokens).items()):
        for lo in range(0, len(wins), batch_size):
            batch = wins[lo : lo + batch_size]
            width = max(len(w) for w in batch)
            ids = torch.tensor([w + [0] * (width - len(w)) for w in batch], device=device)
            mask = torch.tensor([[1] * len(w) + [0] * (width - len(w)) for w in batch], device=device)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target, keep = ids[:, 1:], mask[:, 1:].bool()
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            for j in range(len(batch)):
                out.append(WindowLoss(group, lo + j, float(losses[j][keep[j]].sum()), int(keep[j].sum())))
    return out


def perplexity(model_path: str, docs: Iterable[tuple[str, str]], *, seq_len: int, max_tokens: int = 100_000,
               batch_size: int = 8) -> dict[str, dict[str, float]]:  # fmt: skip
    """{group: {loss, ppl, tokens}}: token-weighted over the group's windows."""
    out: dict[str, dict[str, float]] = {}
    for w in window_losses(model_path, docs, seq_len=seq_len, max_tokens=max_tokens, batch_size=batch_size):
        r = out.setdefault(w.group, {"nll": 0.0, "tokens": 0})
        r["nll"] += w.nll
        r["tokens"] += w.tokens
    for group, r in out.items():
        loss = r.pop("nll") / r["tokens"]
        r.update(loss=loss, ppl=math.exp(loss))
        log.info("held-out %s: perplexity %.3f over %d tokens", group, r["ppl"], r["tokens"])
    return out


def as_metrics(result: dict[str, dict[str, float]], prefix: str = "heldout") -> dict[str, float]:
    return {f"{prefix}.{group}.{k}": float(v) for group, r in result.items() for k, v in r.items() if k != "tokens"}
