"""Answer ids the gateway issues and signs, and the one vote each answer gets.

An id is `r1.<issued, base 36>.<nonce>.<mac>`, the MAC an HMAC-SHA256 (first 128 bits) over
the issue time, the nonce and the principal that received the answer, under the gateway's
signing secret. So an id names no one, cannot be forged or guessed, and verifies only for
the principal it was issued to: feedback from anyone else gets the same 404 as a made-up id.
Clients never choose ids (a client's `x-request-id` is ignored).

The signing secret file holds one secret per line: the first signs, every one verifies (to
rotate, put the new secret first and drop the old one after `feedback_ttl_s`). It must be
the same on every gateway replica."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from pathlib import Path

PREFIX = "r1"
MIN_SECRET_CHARS = 32


class SigningError(ValueError):
    pass


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def new_signing_secret(path: Path) -> None:
    """Writes a new secret (mode 0600) if the file does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")


def read_signing_secrets(path: Path) -> list[bytes]:
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise SigningError(f"no signing secret at {path}: create one (e.g. `python -c 'import secrets; "
                           f"print(secrets.token_hex(32))' > {path}`), the same file on every gateway replica") from None  # fmt: skip
    if not lines or any(len(line) < MIN_SECRET_CHARS for line in lines):
        raise SigningError(
            f"the signing secret file {path} needs one secret of at least {MIN_SECRET_CHARS} characters per line"
        )
    return [line.encode() for line in lines]


class RequestIds:
    def __init__(self, secrets_: list[bytes], ttl_s: float) -> None:
        if not secrets_:
            raise SigningError("at least one signing secret is needed")
        self._secrets, self.ttl_s = secrets_, ttl_s

    @staticmethod
    def _mac(secret: bytes, issued: str, nonce: str, principal: str) -> str:
        return hmac.new(
            secret, f"{PREFIX}|{issued}|{nonce}|{principal}".encode(), hashlib.sha256
        ).hexdigest()[:32]

    def issue(self, principal: str, now: float | None = None) -> str:
        issued, nonce = _b36(int(now if now is not None else time.time())), secrets.token_hex(8)
        return f"{PREFIX}.{issued}.{nonce}.{self._mac(self._secrets[0], issued, nonce, principal)}"

    def verify(self, request_id: str, principal: str, now: float | None = None) -> str | None:
        """None when `request_id` was issued to `principal` and has not expired; else why not
        (`invalid` covers both a forged id and another principal's)."""
        parts = request_id.split(".")
        if len(parts) != 4 or parts[0] != PREFIX:
            return "invalid"
        _, issued, nonce, mac = parts
        if not any(hmac.compare_digest(mac, self._mac(s, issued, nonce, principal)) for s in self._secrets):
            return "invalid"
        age = (now if now is not None else time.time()) - int(issued, 36)
        if age > self.ttl_s or age < -300:
            return "expired"
        return None


class Votes:
    """Which answers were rated already (in this replica; the harvest keeps only the first
    vote per answer across replicas and restarts). Entries are forgotten once their answer
    can no longer be rated; at most `capacity` are kept (the oldest go first)."""

    def __init__(self, ttl_s: float, capacity: int = 1_000_000) -> None:
        self.ttl_s, self.capacity = ttl_s, capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first(self, request_id: str, now: float | None = None) -> bool:
        """True the first time an answer is rated (and records it)."""
        now = now if now is not None else time.time()
        while self._seen and (len(self._seen) >= self.capacity or next(iter(self._seen.values())) < now):
            self._seen.popitem(last=False)
        if request_id in self._seen:
            return False
        self._seen[request_id] = now + self.ttl_s
        return True

    def forget(self, request_id: str) -> None:
        """Takes back a vote that was not recorded after all (the client may send it again)."""
        self._seen.pop(request_id, None)
