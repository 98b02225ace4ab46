"""Generation with vLLM's offline engine, in this process: the backend where vLLM is
installed beside the stage (the GPU eval image). Same prompts, decoding and results as
`TransformersGenerator`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from domainllm.evals.generate import Prompt, cut_at_stop
from domainllm.spec.evals import Decoding

log = logging.getLogger(__name__)


def sampling_params(decoding: Decoding):
    from vllm import SamplingParams

    return SamplingParams(n=decoding.n, temperature=decoding.temperature, top_p=decoding.top_p, top_k=decoding.top_k or -1,
                          max_tokens=decoding.max_new_tokens, repetition_penalty=decoding.repetition_penalty,
                          stop=list(decoding.stop) or None, seed=decoding.seed)  # fmt: skip


class VllmEngineGenerator:
    name = "vllm"

    def __init__(self, model_path: str, **engine_args) -> None:
        from vllm import LLM

        self.llm = LLM(model=model_path, **engine_args)
        self.tokenizer = self.llm.get_tokenizer()

    def __call__(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[list[str]]:
        t0 = time.monotonic()
        texts = [p if isinstance(p, str) else self.tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                 for p in prompts]  # fmt: skip
        outputs = self.llm.generate(texts, sampling_params(decoding), use_tqdm=False)
        log.info("generated for %d prompts with vLLM (%.0fs)", len(texts), time.monotonic() - t0)
        return [[cut_at_stop(o.text, decoding.stop) for o in sorted(out.outputs, key=lambda o: o.index)] for out in outputs]
