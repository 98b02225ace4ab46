"""Eval sets as JSON Lines: objects with their line numbers, or an error naming the line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


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
