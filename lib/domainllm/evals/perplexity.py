"""Held-out perplexity per group (e.g. domain vs general): documents cut into context-length
windows, the token-weighted mean negative log-likelihood over each group. Comparing a model
with the one it started from shows what training taught (domain) and what it cost (general:
catastrophic forgetting)."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable

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


def perplexity(model_path: str, docs: Iterable[tuple[str, str]], *, seq_len: int, max_tokens: int = 100_000,
               batch_size: int = 8) -> dict[str, dict[str, float]]:  # fmt: skip
    """{group: {loss, ppl, tokens}} with at most `max_tokens` scored tokens per group (whole
    windows, documents in the given order). Each document ends with EOS, as in training."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).to(device).eval()
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
    out: dict[str, dict[str, float]] = {}
    for group, wins in sorted(windows.items()):
        nll, count = 0.0, 0
        for lo in range(0, len(wins), batch_size):
            batch = wins[lo : lo + batch_size]
            width = max(len(w) for w in batch)
            ids = torch.tensor([w + [0] * (width - len(w)) for w in batch], device=device)
            mask = torch.tensor([[1] * len(w) + [0] * (width - len(w)) for w in batch], device=device)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target, keep = ids[:, 1:], mask[:, 1:].bool()
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            nll += float(losses[keep].sum())
            count += int(keep.sum())
        loss = nll / count
        out[group] = {"loss": loss, "ppl": math.exp(loss), "tokens": count}
        log.info("held-out %s: perplexity %.3f over %d tokens", group, out[group]["ppl"], count)
    return out


def as_metrics(result: dict[str, dict[str, float]], prefix: str = "heldout") -> dict[str, float]:
    return {f"{prefix}.{group}.{k}": float(v) for group, r in result.items() for k, v in r.items() if k != "tokens"}
