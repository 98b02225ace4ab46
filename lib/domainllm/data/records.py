"""What readers yield: accepted documents and quarantined rejects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why a record was quarantined."""

    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_TEXT = "missing_text"
    TEXT_NOT_STRING = "text_not_string"
    INVALID_ID = "invalid_id"
    EMPTY_TEXT = "empty_text"
    RECORD_TOO_LARGE = "record_too_large"
    BINARY_FILE = "binary_file"
    UNDECODABLE = "undecodable"


@dataclass(slots=True)
class Doc:
    id: str
    text: str
    source: str
    domain: str
    lang: str
    kind: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, str]:
        return {
            "id": self.id,
            "text": self.text,
            "source": self.source,
            "domain": self.domain,
            "lang": self.lang,
            "kind": self.kind,
            "metadata": json.dumps(self.metadata, sort_keys=True, ensure_ascii=False, default=str),
        }


@dataclass(slots=True)
class Reject:
    source: str
    path: str
    line: int | None
    reason: Reason
    detail: str
    raw: bytes | None = None

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            "line": self.line,
            "reason": str(self.reason),
            "detail": self.detail,
            "raw": self.raw,
        }


class InputError(Exception):
    """An input path is missing or unreadable: the stage cannot proceed."""


@dataclass(frozen=True, slots=True)
class Removal:
    """Why a data step removed a document: a stable reason name and a human detail.
    The detail never quotes the document (it may hold PII)."""

    reason: str
    detail: str = ""
    duplicate_of: str | None = None
