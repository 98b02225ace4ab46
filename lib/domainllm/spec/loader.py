"""YAML -> validated `Spec`, with errors that name the field, the value and the fix."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from domainllm.env import home
from domainllm.spec.base import SENSITIVE
from domainllm.spec.model import Spec

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SpecError(ValueError):
    """The spec cannot be used. The message lists every problem found."""


def _loc_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _interpolate(value: Any, loc: tuple[Any, ...], errors: list[str]) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string of the document."""
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), errors) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        errors.append(
            f"{_loc_str(loc)}: environment variable {name} is not set "
            f"(export it, or write ${{{name}:-default}} in the spec)"
        )
        return match.group(0)

    return _VAR.sub(sub, value)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The spec section class that `loc` points into (for listing allowed fields)."""
    model: Any = Spec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _section_type(field.annotation)
    return model


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def _format_error(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    where = _loc_str(loc)
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        return f"{where}: unknown field {loc[-1]!r}; allowed fields here: {', '.join(allowed)}"
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if msg.startswith(SENSITIVE):
        return f"{where}: {msg.removeprefix(SENSITIVE)}"
    if "input" in err and err["type"] not in ("model_type", "dict_type") and not isinstance(
        err["input"], dict
    ):
        return f"{where}: got {err['input']!r}; {msg}"
    return f"{where}: {msg}"


def parse_spec(document: dict[str, Any], *, base_dir: Path, origin: str = "<spec>") -> Spec:
    home()  # export DOMAINLLM_HOME so ${DOMAINLLM_HOME} always resolves
    errors: list[str] = []
    document = _interpolate(document, (), errors)
    if errors:
        raise SpecError(f"invalid spec {origin}:\n  " + "\n  ".join(errors))
    try:
        return Spec.model_validate(document, context={"base_dir": base_dir})
    except ValidationError as exc:
        lines = [_format_error(e) for e in exc.errors()]
        raise SpecError(f"invalid spec {origin}:\n  " + "\n  ".join(lines)) from None


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and validate a spec file. Relative paths inside are relative to its folder. A
    spec may start with `extends: other.yaml` (relative to it): the other file is read first
    and this one's sections are merged over it (mappings key by key, lists replaced), so a
    cluster's spec can be the demo's plus a `runtime` section."""
    path = Path(path)
    document = _read_document(path, ())
    return parse_spec(document, base_dir=path.resolve().parent, origin=str(path))


def spec_files(path: str | os.PathLike[str]) -> list[Path]:
    """The spec file and every file it extends, nearest first."""
    files = [Path(path)]
    while True:
        document = _read_yaml(files[-1])
        base = document.get("extends")
        if not base:
            return files
        files.append(files[-1].parent / str(base))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError(f"spec file not found: {path} (pass --spec PATH to a pipeline YAML file)")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid spec {path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise SpecError(f"invalid spec {path}: the top level must be a mapping of sections")
    return document


def _read_document(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    document = _read_yaml(path)
    base = document.pop("extends", None)
    if base is None:
        return document
    if not isinstance(base, str) or not base:
        raise SpecError(f"invalid spec {path}: `extends` must be the path of another spec file")
    base_path = (path.parent / base).resolve()
    if base_path in seen or base_path == path.resolve():
        chain = " -> ".join(str(p) for p in (*seen, path.resolve(), base_path))
        raise SpecError(f"invalid spec {path}: `extends` loops ({chain})")
    return _merge(_read_document(base_path, (*seen, path.resolve())), document)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def spec_digest(spec: Spec) -> str:
    """Content hash of the resolved spec (lineage: which exact config built a thing)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
