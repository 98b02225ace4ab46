"""Generation with fixed decoding parameters, through transformers (batched, seeded).

Prompts are chat messages (rendered with the model's chat template and its generation
prompt) or plain strings (continued as they are: code completion). Completions are cut at
the model's end-of-turn tokens and before the first of `decoding.stop`. vLLM serves the same
role at scale (issue 6 runs it); this backend is what runs anywhere."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from domainllm.spec.evals import Decoding

log = logging.getLogger(__name__)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def generate(model_path: str, prompts: Sequence[str | list[dict]], decoding: Decoding, *, batch_size: int = 16) -> list[list[str]]:
    """`decoding.n` completions per prompt, in prompt order."""
    import torch

    from domainllm.evals.models import load_for_eval

    model, tokenizer, device = load_for_eval(model_path, padding_side="left")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
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
    for lo in range(0, len(texts), batch_size):
        enc = tokenizer(texts[lo : lo + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            ids = model.generate(**enc, **options)
        decoded = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for i in range(0, len(decoded), decoding.n):
            out.append([cut_at_stop(t, decoding.stop) for t in decoded[i : i + decoding.n]])
        log.info("generated for %d/%d prompts (%.0fs)", len(out), len(texts), time.monotonic() - t0)
    return out
