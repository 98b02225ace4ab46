"""`data.compliance`: block lists per category and an optional classifier for illegal,
sexual or hateful content."""

from __future__ import annotations

from pydantic import Field

from domainllm.spec.base import Section
from domainllm.spec.lists import BlockList, TextClassifier


class ComplianceClassifier(TextClassifier):
    label: str
    """The classifier's label for non-compliant text (e.g. `toxic`, `nsfw`)."""
    max_score: float = Field(default=0.5, ge=0.0, le=1.0)
    """Documents scoring at or above this are removed as `classifier_<label>`."""


class ComplianceConfig(Section):
    builtin_lists: bool = True
    """Use the short built-in lists (`illegal`, `sexual`, `hate`), unambiguous terms only.
    Production corpora should add a maintained list per category with `categories.<name>.path`."""
    categories: dict[str, BlockList] = Field(default_factory=dict)
    """Category -> block list; hits remove the document as `<category>_content`. Adds to
    (or, for the same name, extends) the built-in lists."""
    classifier: ComplianceClassifier | None = None
    skip_sources: tuple[str, ...] = ()
