"""SFT examples and DPO triples: the accepted input formats, checked record by record and
normalized to chat messages.

SFT: Alpaca (`instruction`, optional `input` and `system`, `output`), `messages` (OpenAI
style `role`/`content`) or ShareGPT `conversations` (`from`/`value`). DPO: `prompt`,
`chosen`, `rejected`, each a string or a list of messages. A record that does not fit raises
`ExampleError` naming the field and what is wrong; callers quarantine it with that reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import fsspec

Messages = list[dict[str, str]]
SftFormat = Literal["auto", "alpaca", "messages"]

ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


class ExampleError(ValueError):
    """A record that is not a valid example. `reason` is a stable name for counting;
    the message names the field and never quotes the record's text."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _text(record: dict, key: str, *, required: bool = True, where: str | None = None) -> str:
    where = where or key
    value = record.get(key)
    if value is None:
        if required:
            raise ExampleError("missing_field", f"field `{where}` is missing")
        return ""
    if not isinstance(value, str):
        raise ExampleError("wrong_type", f"field `{where}` must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise ExampleError("empty_field", f"field `{where}` is empty")
    return value


def _check_turns(messages: Messages, field: str, *, final: str | None = "assistant") -> Messages:
    """System first (optional), then user and assistant turns alternating from a user turn."""
    if not messages:
        raise ExampleError("empty_field", f"field `{field}` has no messages")
    body = messages[1:] if messages[0]["role"] == "system" else messages
    for i, m in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            pos = i + (len(messages) - len(body))
            raise ExampleError(
                "bad_turn_order",
                f"field `{field}[{pos}].role` is {m['role']!r} where {expected!r} was expected: after an optional "
                "system message, turns alternate user, assistant, user, ...",
            )
    if final is not None and (not body or body[-1]["role"] != final):
        raise ExampleError("bad_turn_order", f"field `{field}` must end with an {final} message")
    return messages


def _messages(value: Any, field: str, *, role_key: str = "role", text_key: str = "content",
              roles: dict[str, str] | None = None) -> Messages:  # fmt: skip
    if not isinstance(value, list):
        raise ExampleError("wrong_type", f"field `{field}` must be a list of messages, not {type(value).__name__}")
    out: Messages = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise ExampleError("wrong_type", f"field `{field}[{i}]` must be an object with `{role_key}` and `{text_key}`")
        role = m.get(role_key)
        mapped = (roles or {r: r for r in ROLES}).get(role) if isinstance(role, str) else None
        if mapped is None:
            allowed = ", ".join(roles or ROLES)
            shown = repr(role) if len(repr(role)) <= 30 else repr(role)[:27] + "..."  # a label, but a record's own text
            raise ExampleError("bad_role", f"field `{field}[{i}].{role_key}` is {shown}; expected one of {allowed}")
        content = _text(m, text_key, where=f"{field}[{i}].{text_key}")
        out.append({"role": mapped, "content": content})
    return out


def detect_format(record: dict) -> str:
    if "messages" in record or "conversations" in record:
        return "messages"
    if "instruction" in record or "output" in record:
        return "alpaca"
    raise ExampleError(
        "unknown_format",
        "record has none of `messages`, `conversations` (chat) or `instruction`/`output` (Alpaca); "
        f"its fields are: {', '.join(sorted(record)) or 'none'}",
    )


def sft_messages(record: Any, fmt: SftFormat = "auto") -> Messages:
    """One SFT record as chat messages ending with an assistant turn."""
    if not isinstance(record, dict):
        raise ExampleError("not_an_object", f"record must be a JSON object, not {type(record).__name__}")
    fmt = detect_format(record) if fmt == "auto" else fmt
    if fmt == "alpaca":
        instruction = _text(record, "instruction")
        extra = _text(record, "input", required=False)
        system = _text(record, "system", required=False)
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        messages = [{"role": "system", "content": system}] if system.strip() else []
        return messages + [{"role": "user", "content": prompt}, {"role": "assistant", "content": _text(record, "output")}]
    if "messages" in record:
        return _check_turns(_messages(record["messages"], "messages"), "messages")
    if "conversations" in record:
        msgs = _messages(record["conversations"], "conversations", role_key="from", text_key="value", roles=_SHAREGPT_ROLES)
        return _check_turns(msgs, "conversations")
    raise ExampleError("missing_field", "field `messages` (or ShareGPT `conversations`) is missing")


def _side(record: dict, key: str, *, prompt: bool) -> Messages:
    value = record.get(key)
    if isinstance(value, str) or value is None:
        text = _text(record, key)
        return [{"role": "user" if prompt else "assistant", "content": text}]
    msgs = _messages(value, key)
    if prompt:
        return _check_turns(msgs, key, final="user")
    if [m["role"] for m in msgs] != ["assistant"]:
        raise ExampleError("bad_turn_order", f"field `{key}` must be a single assistant message (the answer to `prompt`)")
    return msgs


def dpo_triple(record: Any) -> dict[str, Messages]:
    """One DPO record as {prompt, chosen, rejected} messages."""
    if not isinstance(record, dict):
        raise ExampleError("not_an_object", f"record must be a JSON object, not {type(record).__name__}")
    triple = {"prompt": _side(record, "prompt", prompt=True), "chosen": _side(record, "chosen", prompt=False),
              "rejected": _side(record, "rejected", prompt=False)}  # fmt: skip
    if triple["chosen"][0]["content"].strip() == triple["rejected"][0]["content"].strip():
        raise ExampleError("same_answers", "fields `chosen` and `rejected` hold the same answer: nothing to prefer")
    return triple


def read_records(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[tuple[str, int, Any, str | None]]:
    """(file, position, record, error) for every record of a JSONL or Parquet file, or of
    every such file in a folder. Positions are 1-based lines (JSONL) or rows (Parquet);
    a line that is not JSON comes with record None and the parse error."""
    files = sorted(f for f in fs.find(path) if f.endswith((".jsonl", ".json", ".parquet", ".jsonl.gz"))) if fs.isdir(path) else [path]
    if not files:
        raise FileNotFoundError(f"{path} holds no .jsonl or .parquet files")
    for f in files:
        name = f.rsplit("/", 1)[-1]
        if f.endswith(".parquet"):
            import pyarrow.parquet as pq

            with fs.open(f, "rb") as fh:
                for i, row in enumerate(pq.read_table(fh).to_pylist(), start=1):
                    yield name, i, row, None
            continue
        with fs.open(f, "rb", compression="infer") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield name, i, json.loads(line), None
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    yield name, i, None, f"line is not valid JSON ({exc.__class__.__name__} at column {getattr(exc, 'colno', '?')})"
