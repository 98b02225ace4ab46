"""Shared building blocks for spec sections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, ValidationInfo
from pydantic.functional_validators import AfterValidator


class Section(BaseModel):
    """A spec section: unknown fields are errors, values are immutable once loaded,
    and the docstring under each field is its documentation."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


SENSITIVE = "(input not shown) "
"""Starts a validation message whose input must not be echoed back (it may hold a secret)."""


def is_uri(value: str) -> bool:
    return "://" in value and not value.startswith("file://")


def _resolve_location(value: str, info: ValidationInfo) -> str:
    """Object-store URIs stay as they are; local paths become absolute, relative to the
    folder of the spec file they were written in."""
    if not value:
        raise ValueError("must not be empty")
    if is_uri(value):
        return value
    if value.startswith("file://"):
        value = value[len("file://") :]
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return str(path.resolve())


Location = Annotated[str, AfterValidator(_resolve_location)]
"""A local path (relative to the spec file) or an object-store URI (s3://, gs://, ...)."""
