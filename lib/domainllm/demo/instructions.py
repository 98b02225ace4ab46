"""The demo's SFT examples, built from module synopses ("Name - description\\n\\nSYNOPSIS\\n\\ncode").

Per module: "what does X do?" answered from its description, "show how to use X" answered
with its synopsis, a two-turn conversation asking both, and for every third module a
robustness variant of the question (typos, or the question in another language). Choices
are seeded by the module name, so the examples are the same on every run.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator

from domainllm.train.examples import Messages

_WHAT = ("What does the Perl module {m} do?", "What is {m} for?", "Explain the purpose of the Perl module {m}.")
_HOW = ("Show how to use the Perl module {m}.", "Give me an example of using {m} in Perl.", "How do I use {m}?")
_FOREIGN = (
    "Was macht das Perl-Modul {m}?",
    "¿Para qué sirve el módulo de Perl {m}?",
    "Perl 模块 {m} 是做什么的？",
    "À quoi sert le module Perl {m} ?",
)


def parse_synopsis(text: str) -> tuple[str, str, str] | None:
    """(module, description, synopsis code), or None when the document is not a synopsis."""
    head, sep, code = text.partition("\n\nSYNOPSIS\n\n")
    name, dash, desc = head.strip().partition(" - ")
    if not sep or not dash or not name.strip() or not desc.strip() or not code.strip() or "\n" in name:
        return None
    return name.strip(), desc.strip().rstrip("."), code.strip("\n")


def _cut(code: str, max_chars: int) -> str:
    """Whole lines up to `max_chars` (at least the first line)."""
    out, size = [], 0
    for line in code.splitlines():
        if out and size + len(line) + 1 > max_chars:
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out).rstrip()


def _typos(text: str, rng: random.Random, n: int = 2) -> str:
    """Swaps `n` pairs of adjacent letters outside the module name's `::` parts."""
    chars = list(text)
    spots = [i for i in range(len(chars) - 1) if chars[i].isalpha() and chars[i + 1].isalpha()]
    for i in rng.sample(spots, min(n, len(spots))):
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def _rng(name: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))


def module_examples(name: str, desc: str, code: str, max_answer_chars: int) -> Iterator[tuple[str, Messages]]:
    """(kind, messages) examples for one module."""
    rng = _rng(name)
    about = f"{name}: {desc}."
    usage = _cut(code, max_answer_chars)
    what, how = rng.choice(_WHAT).format(m=name), rng.choice(_HOW).format(m=name)

    def single(question: str, answer: str) -> Messages:
        return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]

    yield "what", single(what, about)
    yield "how", single(how, usage)
    yield "multi_turn", [{"role": "user", "content": what}, {"role": "assistant", "content": about},
                         {"role": "user", "content": "Show me an example."}, {"role": "assistant", "content": usage}]  # fmt: skip
    variant = rng.randrange(3)
    if variant == 0:
        yield "typos", single(_typos(what, rng), about)
    elif variant == 1:
        yield "other_language", single(rng.choice(_FOREIGN).format(m=name), about)


def build_sft_examples(texts: Iterable[tuple[str, str]], max_answer_chars: int) -> Iterator[dict]:
    """Example rows ({id, kind, messages}) from (doc id, text) pairs; documents that are
    not synopses are skipped (counted by the caller)."""
    for doc_id, text in texts:
        parsed = parse_synopsis(text)
        if parsed is None:
            continue
        for kind, messages in module_examples(*parsed, max_answer_chars=max_answer_chars):
            yield {"id": f"{doc_id}#{kind}", "kind": kind, "messages": messages}
