"""A tiny Llama pretrained briefly on the general corpus: the demo's 'base model'."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

from domainllm.progress import Progress
from domainllm.spec.base_model import DemoBaseModel

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_loss_before: float = math.nan
    eval_loss_after: float = math.nan
    tokens_per_s: float = 0.0
    train_tokens: int = 0
    params: int = 0


def build_model(cfg: DemoBaseModel, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=max(2048, cfg.seq_len),
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def pack(token_lists, eos_id: int, seq_len: int):
    """Concatenate documents with EOS between them and cut into `seq_len` blocks."""
    import torch

    flat: list[int] = []
    for ids in token_lists:
        flat.extend(ids)
        flat.append(eos_id)
    n = len(flat) // seq_len
    if n < 2:
        raise ValueError(
            f"corpus too small: {len(flat)} tokens make fewer than 2 blocks of {seq_len}; "
            "add text to base_model.demo.corpus_sources or lower seq_len"
        )
    return torch.tensor(flat[: n * seq_len], dtype=torch.long).view(n, seq_len)


def _eval_loss(model, blocks, batch_size: int) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(blocks), batch_size):
            batch = blocks[i : i + batch_size]
            total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
            count += len(batch)
    model.train()
    return total / max(count, 1)


def pretrain(model, blocks, cfg: DemoBaseModel) -> PretrainResult:
    """Plain AdamW loop with warmup + cosine decay over random blocks; 5% held out."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(blocks), generator=gen)
    n_eval = max(1, len(blocks) // 20)
    eval_blocks, train_blocks = blocks[order[:n_eval]], blocks[order[n_eval:]]
    eval_blocks = eval_blocks[:64]

    result = PretrainResult(params=sum(p.numel() for p in model.parameters()))
    result.eval_loss_before = _eval_loss(model, eval_blocks, cfg.batch_size)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.1, betas=(0.9, 0.95))
    warmup = max(1, cfg.steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, cfg.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    progress = Progress(log, "base_model pretrain")
    model.train()
    t0 = time.monotonic()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(train_blocks), (cfg.batch_size,), generator=gen)
        batch = train_blocks[idx]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        result.losses.append((step, loss.item()))
        result.train_tokens += batch.numel()
        progress.update(step=step + 1, loss=loss.item(), tokens=result.train_tokens)
    elapsed = time.monotonic() - t0
    result.tokens_per_s = result.train_tokens / max(elapsed, 1e-9)
    result.eval_loss_after = _eval_loss(model, eval_blocks, cfg.batch_size)
    log.info(
        "base_model pretrain: %d steps, loss %.3f -> %.3f, held-out %.3f -> %.3f, %.0f tok/s",
        cfg.steps, result.losses[0][1], result.losses[-1][1], result.eval_loss_before,
        result.eval_loss_after, result.tokens_per_s,
    )  # fmt: skip
    return result
