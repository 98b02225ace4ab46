"""The eval suites with retrieval: a generator that puts the knowledge base's chunks into
each prompt (as the gateway does for users, same code) before the model answers, so the
suites measure what retrieval adds. The role it scores is `<role>_rag`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domainllm.evals.generate import Generator, Prompt
from domainllm.spec.evals import Decoding

SUFFIX = "_rag"


class RetrievingGenerator:
    def __init__(self, inner: Generator, augmenter: Any) -> None:
        self.inner, self.augmenter = inner, augmenter
        self.name = f"{inner.name}{SUFFIX}"

    def augment(self, prompt: Prompt) -> Prompt:
        if isinstance(prompt, str):
            return self.augmenter.augment("completions", {"prompt": prompt}).request["prompt"]
        return self.augmenter.augment("chat.completions", {"messages": prompt}).request["messages"]

    def __call__(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[list[str]]:
        return self.inner([self.augment(p) for p in prompts], decoding)


def augmenter_for(kb_info: dict[str, Any], policy: dict[str, Any]) -> Any:
    """The gateway's augmenter over the run's knowledge base, with one route: `policy`."""
    from domainllm.serve.gateway.augment import DEFAULT_ROUTE, Augmenter

    return Augmenter({"knowledge": {"store": kb_info["store"], "embedding": kb_info["embedding"]["path"]},
                      "routes": {DEFAULT_ROUTE: {"retrieval": {**policy, "enabled": True}, "system": None}}})  # fmt: skip
