"""Multiple-choice benchmarks (MMLU / CMMLU style) scored by log-likelihood: the model's
answer is the option whose continuation it finds most likely, so no generation or answer
parsing is involved.

Formats: JSONL records `{"id", "question", "choices": [...], "answer": "B" | 1}`, or CSV as
MMLU ships it (no header: question, A, B, C, D, answer letter) or as CMMLU does (a header
`Question,A,B,C,D,Answer`). `scoring`: `letter` (the prompt lists the options and the
continuation is " A", " B", ...: MMLU's protocol) or `text` (the continuation is the option's
text, its log-likelihood divided by its length in characters: better for small models).
"""

from __future__ import annotations

import csv
import io
import string
from dataclasses import dataclass
from typing import Literal

from domainllm.evals.jsonl import json_objects

LETTERS = string.ascii_uppercase


class ChoiceDataError(ValueError):
    """A multiple-choice file that cannot be scored; says which record and field."""


@dataclass(frozen=True)
class ChoiceItem:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: int


@dataclass(frozen=True)
class ChoiceResult:
    id: str
    predicted: int
    answer: int
    scores: tuple[float, ...]

    @property
    def correct(self) -> bool:
        return self.predicted == self.answer


def _answer_index(value: object, n: int, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n:
        return value
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS[:n]:
        return LETTERS.index(value.strip().upper())
    raise ChoiceDataError(f"{where}: field `answer` is {value!r}; expected a letter A-{LETTERS[n - 1]} or an index 0-{n - 1}")


def _item(record: dict, where: str, fallback_id: str) -> ChoiceItem:
    question, choices = record.get("question"), record.get("choices")
    if not isinstance(question, str) or not question.strip():
        raise ChoiceDataError(f"{where}: field `question` is missing or empty")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
        raise ChoiceDataError(f"{where}: field `choices` must list at least two non-empty strings")
    return ChoiceItem(str(record.get("id") or fallback_id), question, tuple(choices), _answer_index(record.get("answer"), len(choices), where))


def parse_items(text: str, name: str) -> list[ChoiceItem]:
    """Items of a JSONL or CSV (MMLU / CMMLU) file's text; `name` is used in errors and ids."""
    items: list[ChoiceItem] = []
    if name.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        header = [c.strip().lower() for c in rows[0]] if rows else []
        start = 1 if header[:1] == ["question"] or header[1:2] == ["question"] else 0
        q = header.index("question") if start else 0
        for n, row in enumerate(rows[start:], start=start + 1):
            if len(row) < q + 4:
                raise ChoiceDataError(f"{name} row {n}: expected question, options and answer columns, got {len(row)} columns")
            record = {"question": row[q], "choices": row[q + 1 : -1], "answer": row[-1]}
            items.append(_item(record, f"{name} row {n}", f"{name}:{n}"))
    else:
        for n, record in json_objects(text.splitlines(), name, ChoiceDataError):
            items.append(_item(record, f"{name} line {n}", f"{name}:{n}"))
    if not items:
        raise ChoiceDataError(f"{name} holds no questions")
    return items


def prompt_and_options(item: ChoiceItem, scoring: Literal["letter", "text"]) -> tuple[str, list[str]]:
    if scoring == "letter":
        listed = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item.choices))
        return f"{item.question}\n{listed}\nAnswer:", [f" {LETTERS[i]}" for i in range(len(item.choices))]
    return f"Question: {item.question}\nAnswer:", [f" {c}" for c in item.choices]


def loglikelihoods(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = 16) -> list[tuple[float, int]]:
    """(sum of log-probabilities of the continuation's tokens given the context, number of
    those tokens) per (context, continuation). Context and continuation are tokenized
    apart, so the continuation's tokens are exactly its own."""
    import torch

    device = next(model.parameters()).device
    out: list[tuple[float, int]] = []
    for lo in range(0, len(pairs), batch_size):
        batch = pairs[lo : lo + batch_size]
        seqs, spans = [], []
        for context, continuation in batch:
            ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
            cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
            if tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
                ctx = [tokenizer.bos_token_id, *ctx]
            seqs.append(ctx + cont)
            spans.append((len(ctx), len(cont)))
        width = max(len(s) for s in seqs)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for row, (start, n) in enumerate(spans):
            targets = ids[row, start : start + n]
            picked = logprobs[row, start - 1 : start - 1 + n].gather(1, targets[:, None])
            out.append((float(picked.sum()), n))
    return out


def score_items(model, tokenizer, items: list[ChoiceItem], scoring: Literal["letter", "text"] = "letter",
                batch_size: int = 16) -> list[ChoiceResult]:  # fmt: skip
    pairs, owners = [], []
    for i, item in enumerate(items):
        context, options = prompt_and_options(item, scoring)
        pairs.extend((context, o) for o in options)
        owners.extend([i] * len(options))
    lls = loglikelihoods(model, tokenizer, pairs, batch_size)
    per_item: list[list[float]] = [[] for _ in items]
    for i, (pair, (ll, _)) in zip(owners, zip(pairs, lls, strict=True), strict=True):
        per_item[i].append(ll / max(1, len(pair[1])) if scoring == "text" else ll)
    return [ChoiceResult(item.id, max(range(len(s)), key=s.__getitem__), item.answer, tuple(s))
            for item, s in zip(items, per_item, strict=True)]  # fmt: skip
