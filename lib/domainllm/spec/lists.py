"""Building blocks shared by filtering steps: block lists and text classifiers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domainllm.spec.base import Location, Section


class BlockList(Section):
    words: tuple[str, ...] = ()
    """Words or phrases (case-insensitive, whole words) that mark a document as unwanted."""
    path: Location | None = None
    """A file with one word or phrase per line ('#' comments), added to `words`."""
    max_count: int = Field(default=0, ge=0)
    """A document with more matches than this is removed."""


class TextClassifier(Section):
    """A sequence-classification model from a local path, applied in batches."""

    path: Location
    """A Hugging Face sequence-classification model folder."""
    kind: Literal["transformers"] = "transformers"
    label: str | None = None
    """The label whose probability is the score; default: the last label."""
    batch_size: int = Field(default=32, ge=1)
    max_chars: int = Field(default=4000, ge=1)
    """Only the first characters are scored."""
