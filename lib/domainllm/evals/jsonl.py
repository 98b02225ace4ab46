"""Eval sets as JSON Lines: objects with their line numbers, or an error naming the line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


def json_objects(lines: Iterable[str], name: str, error: type[ValueError]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line; `error` for one that is not a JSON object."""
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{name} line {n}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise error(f"{name} line {n}: a record must be a JSON object")
        yield n, record


def read_records(lines: Iterable[str], name: str, error: type[ValueError], build: Callable[[dict, str], T], what: str) -> list[T]:
    """`build(record, where)` for every record, ids unique (`.id`), at least one; `error` naming
    the file and line otherwise. `what` names a record in messages ("problem", "prompt")."""
    items: list[T] = []
    seen: set[str] = set()
    for lineno, record in json_objects(lines, name, error):
        item = build(record, f"{name} line {lineno}")
        if item.id in seen:
            raise error(f"{name} line {lineno}: {what} id {item.id!r} appears twice")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise error(f"{name} holds no {what}s")
    return items
