"""Sampling chat answers from a local model with transformers (batched, seeded)."""

from __future__ import annotations

import logging
import time

from domainllm.train.examples import Messages

log = logging.getLogger(__name__)


def sample_answers(model_path: str, prompts: list[Messages], *, max_new_tokens: int, temperature: float, seed: int,
                   batch_size: int = 32) -> list[str]:  # fmt: skip
    """One sampled answer per prompt (chat template with the generation prompt; stops at
    the model's end-of-turn tokens or after `max_new_tokens`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    torch.manual_seed(seed)
    answers: list[str] = []
    t0 = time.monotonic()
    for start in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts[start : start + batch_size]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        new = out[:, enc["input_ids"].shape[1] :]
        answers.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
        log.info("sampled %d/%d answers (%.0fs)", len(answers), len(prompts), time.monotonic() - t0)
    return answers
