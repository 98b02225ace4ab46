"""API keys: who is calling the gateway.

The keys file (a Kubernetes Secret, or `$DOMAINLLM_HOME/serve/<pipeline>/gateway/keys.json`
locally) holds, per key, its name, a pseudonymous principal id, its role and limits, and the
SHA-256 of the key, never the key itself:

    {"keys": [{"id": "search-team", "principal": "p-5c1e0a9b7d3f2e11", "sha256": "9f2c...",
               "role": "user", "limits": {"requests_per_minute": 60}}]}

Keys are 256-bit random tokens (`dlm-...`), so one SHA-256 is enough to store them (there is
nothing to brute-force); a lookup hashes the presented key and finds its entry. The file is
reread when it changes: adding, disabling or rotating a key needs no restart. The principal id
is what logs, feedback and preference pairs carry: it links a person's data for deletion and
audit without naming them (the key's `id` never leaves this file and the gateway's memory).

Roles: `user` (everyone's traffic), `platform` (the rollout's probes and the flywheel's own
requests: only these may mark their requests with `x-domainllm-source`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from domainllm.spec.base import Section
from domainllm.spec.serving import GatewayLimits

KEY_PREFIX = "dlm-"
ROLES = ("user", "platform")


class KeysError(ValueError):
    pass


class _Overrides(Section):
    requests_per_minute: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    requests_per_day: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    feedback_per_day: int | None = Field(default=None, ge=0)


class KeyEntry(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    principal: str = Field(pattern=r"^p-[0-9a-f]{16}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Literal["user", "platform"] = "user"
    limits: _Overrides = _Overrides()
    disabled: bool = False


class KeysFile(Section):
    keys: tuple[KeyEntry, ...] = ()


@dataclass(frozen=True)
class Principal:
    principal: str
    """The pseudonymous id logs and training data carry."""
    role: str
    limits: GatewayLimits

    @property
    def platform(self) -> bool:
        return self.role == "platform"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_principal() -> str:
    return "p-" + secrets.token_hex(8)


def bearer(authorization: str | None, api_key_header: str | None = None) -> str | None:
    """The key of `Authorization: Bearer <key>` (or an `api-key` header)."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return api_key_header.strip() if api_key_header and api_key_header.strip() else None


def read_keys(path: Path) -> KeysFile:
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeysError(
            f"no keys file at {path}: create one with `domainllm serve keys add --keys {path} --id NAME`"
        ) from None
    except ValueError as exc:
        raise KeysError(
            f"the keys file {path} is not JSON ({exc.__class__.__name__} at line {getattr(exc, 'lineno', '?')})"
        ) from None
    try:
        keys = KeysFile.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)[:5]
        )
        raise KeysError(f"the keys file {path} is not valid: {where}") from None
    ids = [k.id for k in keys.keys]
    if len(set(ids)) != len(ids):
        raise KeysError(
            f"the keys file {path} names a key id twice: {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    return keys


def add_key(path: Path, key_id: str, *, role: str = "user", principal: str | None = None,
            limits: dict[str, int] | None = None) -> str:  # fmt: skip
    """Adds a key to the file (created with mode 0600) and returns the key: the only time it
    is ever shown. `principal`: an existing principal's id, to rotate that principal's key."""
    keys = read_keys(path) if path.exists() else KeysFile()
    if any(k.id == key_id for k in keys.keys):
        raise KeysError(
            f"the keys file {path} already has a key {key_id!r}; pick another id (disable the old one to rotate)"
        )
    key = new_key()
    entry = KeyEntry(id=key_id, principal=principal or new_principal(), sha256=hash_key(key), role=role,  # type: ignore[arg-type]
                     limits=_Overrides(**(limits or {})))  # fmt: skip
    write_keys(path, KeysFile(keys=(*keys.keys, entry)))
    return key


def write_keys(path: Path, keys: KeysFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(keys.model_dump_json(indent=1, exclude_defaults=True))
    os.replace(tmp, path)


class KeyTable:
    """The keys file, reread when it changes (checked at most every 0.5 s). A file that turns
    invalid keeps the last good keys and says why in the log."""

    def __init__(self, path: Path, defaults: GatewayLimits) -> None:
        self.path, self.defaults = path, defaults
        self._lock = threading.Lock()
        self._by_hash: dict[str, Principal] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.error: str | None = None
        self._load(read_keys(path))

    def _load(self, keys: KeysFile) -> None:
        by_hash = {}
        for k in keys.keys:
            if k.disabled:
                continue
            limits = self.defaults.model_copy(update=k.limits.model_dump(exclude_none=True))
            by_hash[k.sha256] = Principal(k.principal, k.role, limits)
        st = self.path.stat()
        self._by_hash, self._stamp, self.error = by_hash, (st.st_mtime_ns, st.st_size), None

    def refresh(self, now: float) -> None:
        if now - self._checked < 0.5:
            return
        self._checked = now
        try:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size) == self._stamp:
                return
            with self._lock:
                self._load(read_keys(self.path))
        except (OSError, KeysError) as exc:
            self.error = str(exc)

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, key: str | None) -> Principal | None:
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 256:
            return None
        return self._by_hash.get(hash_key(key))


_KEY_TEXT = re.compile(r"dlm-[A-Za-z0-9_-]{20,}")


def redact_keys(text: str) -> str:
    """`text` with anything shaped like one of our keys replaced (for error messages and logs)."""
    return _KEY_TEXT.sub("dlm-[redacted]", text)
