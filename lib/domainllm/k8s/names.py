"""Names and label values Kubernetes accepts, made from run ids and stage names that may not be."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63
MAX_LABEL = 63

_INVALID = re.compile(r"[^a-z0-9-]+")
_LABEL_INVALID = re.compile(r"[^A-Za-z0-9._-]+")


def _digest(value: str, n: int = 8) -> str:
    return hashlib.sha1(value.encode()).hexdigest()[:n]


def label_value(value: str) -> str:
    """A label value for `value`: kept when valid, otherwise cleaned and, if it had to be cut
    or changed, ended with a hash of the original so two values never collide. The original
    goes into an annotation where it matters (run ids)."""
    if len(value) <= MAX_LABEL and re.fullmatch(r"([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?", value):
        return value
    clean = _LABEL_INVALID.sub("-", value).strip("-._")
    return f"{clean[: MAX_LABEL - 9].rstrip('-._')}-{_digest(value)}".lstrip("-._")


def object_name(*parts: str, max_len: int = MAX_NAME, suffix: str = "") -> str:
    """A DNS-1035 label (what Services need, and stricter than pods and jobs): lower case,
    letters, digits and '-', starting with a letter, at most `max_len` with `-suffix`."""
    base = _INVALID.sub("-", "-".join(p for p in parts if p).lower()).strip("-")
    base = re.sub(r"-{2,}", "-", base)
    if not base or not base[0].isalpha():
        base = f"dl-{base}".rstrip("-")
    room = max_len - (len(suffix) + 1 if suffix else 0)
    if len(base) > room:
        tag = _digest(base, 6)
        base = f"{base[: room - 7].rstrip('-')}-{tag}"
    return f"{base}-{suffix}" if suffix else base


def random_suffix(n: int = 5) -> str:
    import secrets

    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' generateName: no vowels, no look-alikes
    return "".join(secrets.choice(alphabet) for _ in range(n))
