"""`sources`: where the raw domain and general text comes from."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from domainllm.spec.base import Location, Section

SourceFormat = Literal["auto", "jsonl", "parquet", "text", "code"]


class Source(Section):
    name: str
    """Short identifier, written into every record's `source` column and into ids."""
    path: Location
    """A file or a folder; local path or object-store URI."""
    format: SourceFormat = "auto"
    """How to read it. `auto` picks by file extension: .jsonl/.json(.gz) -> jsonl,
    .parquet -> parquet, known source-code extensions -> code, anything else -> text."""
    domain: Literal["domain", "general"]
    """Whether this is domain data or general data (used for mixing and forgetting evals)."""
    lang: str | None = None
    """Natural language of the text (e.g. `en`, `zh`). For code the language comes from
    the file extension. For JSONL a per-record `lang` field wins over this."""
    text_field: str = "text"
    """JSONL/Parquet: the field holding the document text."""
    id_field: str = "id"
    """JSONL/Parquet: the field holding a record id. When absent a stable id is derived
    from the source name, file path and record position."""
    include: tuple[str, ...] = ()
    """Folder sources: glob patterns (relative to `path`) a file must match, e.g. `**/*.pm`.
    Empty means every file."""
    exclude: tuple[str, ...] = ("**/.git/**", "**/__pycache__/**", "**/node_modules/**")
    """Folder sources: glob patterns of files to skip."""
    task: str | None = None
    """Task-type tag carried into the mix (e.g. `qa`, `code-completion`) for SFT data; a
    record's own `task` field wins."""
    extensions: dict[str, str] = Field(default_factory=dict)
    """Code sources: extra or overriding extension -> language mappings, e.g. `{".pod": "pod"}`."""

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", value):
            raise ValueError(
                "must be 1-63 characters of lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit (e.g. 'perl-docs')"
            )
        return value

    @field_validator("extensions")
    @classmethod
    def _extensions_have_dots(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [ext for ext in value if not ext.startswith(".")]
        if bad:
            raise ValueError(f"extension keys must start with '.', got {bad} (e.g. '.pod': 'pod')")
        return value
