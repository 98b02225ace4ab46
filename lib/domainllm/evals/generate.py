"""Generation with fixed decoding parameters, through transformers (batched, seeded).

Prompts are chat messages (rendered with the model's chat template and its generation
prompt) or plain strings (continued as they are: code completion). Completions are cut at
the model's end-of-turn tokens and before the first of `decoding.stop`. The other backends
(`evals/backends.py`: vLLM in process or as a server) return the same thing."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from domainllm.spec.evals import Decoding

log = logging.getLogger(__name__)

Prompt = str | list[dict]


class Generator(Protocol):
    name: str

    def __call__(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[list[str]]:
        """`decoding.n` completions per prompt, in prompt order."""
        ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


class TransformersGenerator:
    name = "transformers"

    def __init__(self, model_path: str, *, batch_size: int = 16) -> None:
        from domainllm.evals.models import load_for_eval

        self.model, self.tokenizer, self.device = load_for_eval(model_path, padding_side="left")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size

    def __call__(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[list[str]]:
        import torch

        tokenizer = self.tokenizer
        sample = decoding.temperature > 0
        options = {"max_new_tokens": decoding.max_new_tokens, "do_sample": sample, "num_return_sequences": decoding.n,
                   "repetition_penalty": decoding.repetition_penalty, "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
        if sample:
            options.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=decoding.top_k)
        elif decoding.n > 1:
            raise ValueError(f"{decoding.n} samples per prompt need sampling: set decoding.temperature > 0")
        torch.manual_seed(decoding.seed)
        texts = [p if isinstance(p, str) else tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
        out: list[list[str]] = []
        t0 = time.monotonic()
        for lo in range(0, len(texts), self.batch_size):
            enc = tokenizer(texts[lo : lo + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with torch.no_grad():
                ids = self.model.generate(**enc, **options)
            decoded = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for i in range(0, len(decoded), decoding.n):
                out.append([cut_at_stop(t, decoding.stop) for t in decoded[i : i + decoding.n]])
            log.info("generated for %d/%d prompts (%.0fs)", len(out), len(texts), time.monotonic() - t0)
        return out


def generate(model_path: str, prompts: Sequence[Prompt], decoding: Decoding, *, batch_size: int = 16) -> list[list[str]]:
    """`decoding.n` completions per prompt from the model at `model_path`, with transformers."""
    return TransformersGenerator(model_path, batch_size=batch_size)(prompts, decoding)
