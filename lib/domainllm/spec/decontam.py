"""`data.decontamination`: remove training documents that share n-grams with evaluation sets."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainllm.spec.base import Location, Section


class EvalSet(Section):
    name: str
    """Names the set in reports and removal details."""
    path: Location
    """A JSONL or Parquet file, or a folder of them, one evaluation item per record."""
    format: Literal["auto", "jsonl", "parquet"] = "auto"
    fields: tuple[str, ...] = ()
    """Fields whose text is checked (e.g. `question`, `choices`, `answer`); empty: every
    string or list-of-strings field."""

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
            raise ValueError("must be letters, digits, '.', '_' or '-' (e.g. 'perl-qa')")
        return value


class DecontamConfig(Section):
    eval_sets: tuple[EvalSet, ...] = ()
    """Every evaluation set the model will be judged on. (The eval suites of the spec's
    `evals` section are added here when that section lands.)"""
    ngram: int = Field(default=13, ge=4, le=64)
    """Words per n-gram (GPT-3 and most decontamination reports use 13)."""
    min_item_words: int = Field(default=8, ge=1)
    """Eval items shorter than `ngram` words are matched whole when they have at least this
    many words; shorter ones are too generic to match on and are counted as `too_short`."""
    min_hits: int = Field(default=1, ge=1)
    """Shared n-grams that make a document contaminated."""
    skip_sources: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> DecontamConfig:
        names = [s.name for s in self.eval_sets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"eval_sets: duplicate names {dupes}")
        return self
