"""Any OpenAI-compatible endpoint (our own vLLM server, a hosted judge): the client, and
generation through it with the same decoding parameters and result shape as the local
backends. The API key is read from the environment variable the spec names; neither the
key nor the prompts ever go into an error message."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from domainllm.evals.generate import Prompt, cut_at_stop
from domainllm.spec.evals import Decoding

log = logging.getLogger(__name__)


class EndpointError(RuntimeError):
    pass


def make_client(base_url: str, api_key_env: str | None = None, *, timeout_s: float = 120, retries: int = 3):
    from openai import OpenAI

    key = "EMPTY"  # vLLM without --api-key accepts any
    if api_key_env:
        key = os.environ.get(api_key_env, "")
        if not key:
            raise EndpointError(f"the environment variable {api_key_env} (api_key_env) is not set or empty: "
                                f"export the endpoint's API key in it (or a Kubernetes secret as env)")  # fmt: skip
    return OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=retries)


def describe_error(exc: Exception, base_url: str) -> str:
    """What went wrong talking to the endpoint, without the request or the key."""
    import openai

    if isinstance(exc, openai.AuthenticationError):
        return f"{base_url} rejected the API key (401): check the variable named by api_key_env"
    if isinstance(exc, openai.APIStatusError):
        return f"{base_url} answered {exc.status_code}: {str(exc.message)[:300]}"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach {base_url}: is the server up and the URL right (it ends in /v1)?"
    return f"{base_url}: {type(exc).__name__}: {str(exc)[:300]}"


def sampling_options(decoding: Decoding) -> dict:
    """Request fields for `decoding`; the non-OpenAI ones (top_k, repetition_penalty) only when
    they are not the default, so a strict OpenAI server does not refuse the request."""
    options: dict = {"temperature": decoding.temperature, "top_p": decoding.top_p, "max_tokens": decoding.max_new_tokens,
                     "n": decoding.n, "seed": decoding.seed}  # fmt: skip
    if decoding.stop:
        options["stop"] = list(decoding.stop)
    extra = {}
    if decoding.top_k:
        extra["top_k"] = decoding.top_k
    if decoding.repetition_penalty != 1.0:
        extra["repetition_penalty"] = decoding.repetition_penalty
    if extra:
        options["extra_body"] = extra
    return options


class EndpointGenerator:
    """Plain-string prompts through /v1/completions, chat prompts through /v1/chat/completions
    (the server applies the model's chat template); requests run concurrently, so the server
    batches them."""

    name = "endpoint"

    def __init__(self, client, model: str, *, concurrency: int = 16) -> None:
        self.client, self.model, self.concurrency = client, model, concurrency

    def _one(self, prompt: Prompt, decoding: Decoding) -> list[str]:
        options = sampling_options(decoding)
        if isinstance(prompt, str):
            resp = self.client.completions.create(model=self.model, prompt=prompt, **options)
            texts = [c.text for c in sorted(resp.choices, key=lambda c: c.index)]
        else:
            resp = self.client.chat.completions.create(model=self.model, messages=prompt, **options)
            texts = [c.message.content or "" for c in sorted(resp.choices, key=lambda c: c.index)]
        return [cut_at_stop(t, decoding.stop) for t in texts]

    def __call__(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[list[str]]:
        import openai

        t0 = time.monotonic()
        try:
            with ThreadPoolExecutor(self.concurrency) as pool:
                out = list(pool.map(lambda p: self._one(p, decoding), prompts))
        except openai.OpenAIError as exc:
            raise EndpointError(describe_error(exc, str(self.client.base_url))) from None
        log.info("generated for %d prompts through %s (%.0fs)", len(out), self.client.base_url, time.monotonic() - t0)
        return out
