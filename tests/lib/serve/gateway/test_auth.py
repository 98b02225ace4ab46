"""The gateway's identity and limits, piece by piece: keys stored hashed and reread when the
file changes, answer ids that verify only for the key they were issued to (forged, another
key's and expired ids refused), one vote per answer, per-key rate, concurrency and daily
quotas, and the request allowlist with its caps."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from domainllm.serve.gateway.auth import (
    KeysError,
    KeyTable,
    add_key,
    bearer,
    hash_key,
    read_keys,
    redact_keys,
)
from domainllm.serve.gateway.ids import (
    RequestIds,
    SigningError,
    Votes,
    new_signing_secret,
    read_signing_secrets,
)
from domainllm.serve.gateway.limits import Limiter, LimitExceeded
from domainllm.serve.gateway.policy import PolicyError, check
from domainllm.spec.serving import GatewayLimits, GatewayPolicy


def test_keys_are_stored_hashed_and_reread_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    alice = add_key(path, "alice", limits={"requests_per_minute": 5})
    assert alice.startswith("dlm-") and len(alice) > 40
    assert alice not in path.read_text() and hash_key(alice) in path.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o600
    table = KeyTable(path, GatewayLimits())
    who = table.lookup(alice)
    assert who is not None and who.principal.startswith("p-") and who.limits.requests_per_minute == 5
    assert who.limits.concurrency == GatewayLimits().concurrency  # the defaults fill what the key does not set
    assert "alice" not in who.principal  # the principal id names no one
    assert table.lookup("dlm-" + "x" * 43) is None and table.lookup(None) is None and table.lookup(alice[:-1]) is None
    bob = add_key(path, "bob", role="platform")
    time.sleep(0.01)
    table.refresh(time.monotonic() + 1)
    assert table.lookup(bob) is not None and table.lookup(bob).platform
    keys = read_keys(path)
    path.write_text(keys.model_copy(update={"keys": tuple(k.model_copy(update={"disabled": k.id == "alice"}) for k in keys.keys)})
                    .model_dump_json())  # fmt: skip
    table.refresh(time.monotonic() + 2)
    assert table.lookup(alice) is None and table.lookup(bob) is not None
    path.write_text("{not json")
    table.refresh(time.monotonic() + 3)
    assert table.lookup(bob) is not None and "not JSON" in (table.error or "")  # the last good keys stay
    with pytest.raises(KeysError, match="already has a key 'bob'"):
        add_key(tmp_path / "k2.json", "bob") and add_key(tmp_path / "k2.json", "bob")
    with pytest.raises(KeysError, match="no keys file"):
        read_keys(tmp_path / "missing.json")


def test_bearer_and_redaction() -> None:
    assert bearer("Bearer dlm-abc") == "dlm-abc" and bearer("bearer  dlm-abc ") == "dlm-abc"
    assert bearer("Basic xyz") is None and bearer(None, "dlm-k") == "dlm-k" and bearer(None) is None
    key = "dlm-" + "A1_b" * 11
    assert key not in redact_keys(f"the key {key} was refused") and "dlm-[redacted]" in redact_keys(key)


def test_answer_ids_verify_only_for_their_principal(tmp_path: Path) -> None:
    secret = tmp_path / "signing.secret"
    new_signing_secret(secret)
    ids = RequestIds(read_signing_secrets(secret), ttl_s=3600)
    rid = ids.issue("p-aaaaaaaaaaaaaaaa", now=1_000_000)
    assert ids.verify(rid, "p-aaaaaaaaaaaaaaaa", now=1_000_100) is None
    assert ids.verify(rid, "p-bbbbbbbbbbbbbbbb", now=1_000_100) == "invalid"  # another principal's answer
    forged = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    assert ids.verify(forged, "p-aaaaaaaaaaaaaaaa", now=1_000_100) == "invalid"
    assert ids.verify("client-chosen-1", "p-aaaaaaaaaaaaaaaa") == "invalid"
    assert ids.verify(rid, "p-aaaaaaaaaaaaaaaa", now=1_000_000 + 3601) == "expired"
    other = RequestIds([b"x" * 40], ttl_s=3600)  # another gateway's secret
    assert other.verify(rid, "p-aaaaaaaaaaaaaaaa", now=1_000_100) == "invalid"
    rotated = RequestIds([b"n" * 40, *read_signing_secrets(secret)], ttl_s=3600)  # new secret first, old one still verifies
    assert rotated.verify(rid, "p-aaaaaaaaaaaaaaaa", now=1_000_100) is None
    assert ids.issue("p-aaaaaaaaaaaaaaaa") != ids.issue("p-aaaaaaaaaaaaaaaa")
    (tmp_path / "weak").write_text("short\n")
    with pytest.raises(SigningError, match="at least 32"):
        read_signing_secrets(tmp_path / "weak")


def test_one_vote_per_answer() -> None:
    votes = Votes(ttl_s=10, capacity=3)
    assert votes.first("a", now=0) and not votes.first("a", now=1)
    votes.forget("a")
    assert votes.first("a", now=2)
    assert votes.first("b", now=2) and votes.first("c", now=2) and votes.first("d", now=2)  # capacity: the oldest goes
    assert votes.first("a", now=3)
    assert votes.first("b", now=20)  # past its time: forgotten


def _principal(**limits):
    from domainllm.serve.gateway.auth import Principal, new_principal

    return Principal(new_principal(), "user", GatewayLimits(**limits))


def test_rate_concurrency_and_daily_quotas() -> None:
    lim = Limiter()
    p = _principal(requests_per_minute=2, concurrency=10)
    lim.start(p, 10, now=0)
    lim.finish(p, 10, 3)
    lim.start(p, 10, now=0)
    lim.finish(p, 10, None)
    with pytest.raises(LimitExceeded) as exc:
        lim.start(p, 10, now=0.1)
    assert exc.value.code == "rate_limit_exceeded" and 20 < exc.value.retry_after_s <= 30
    lim.start(p, 10, now=31)  # a token back after 30 s
    c = _principal(concurrency=1)
    lim.start(c, 1, now=0)
    with pytest.raises(LimitExceeded, match="in flight") as exc:
        lim.start(c, 1, now=0)
    assert exc.value.code == "concurrency_limit_exceeded"
    lim.finish(c, 1, 1)
    lim.start(c, 1, now=0)
    t = _principal(tokens_per_day=100)
    lim.start(t, 60, now=0)
    lim.finish(t, 60, 30)  # the reservation became the real usage
    with pytest.raises(LimitExceeded, match="70 left") as exc:
        lim.start(t, 71, now=1)
    assert exc.value.code == "insufficient_quota"
    lim.start(t, 71, now=86400)  # a new day
    f = _principal(feedback_per_day=1)
    lim.feedback(f, now=0)
    with pytest.raises(LimitExceeded, match="feedback"):
        lim.feedback(f, now=1)


POLICY = GatewayPolicy(max_n=2, max_tokens=64, max_stop=2, max_messages=3)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(("extra", "message"), [
    ({"chat_template": "{{ evil }}"}, "unsupported field"), ({"best_of": 4}, "unsupported field"),
    ({"guided_json": {}}, "unsupported field"), ({"n": 3}, "`n` must be"), ({"max_tokens": 65}, "`max_tokens` must be"),
    ({"max_tokens": True}, "`max_tokens` must be"), ({"temperature": 9}, "`temperature` must be"),
    ({"stop": ["a", "b", "c"]}, "`stop`"), ({"stop": "x" * 200}, "`stop`"), ({"messages": []}, "`messages`"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "role"), ({"messages": [CHAT["messages"][0]] * 4}, "at most 3 messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]}, "only text parts"),
    ({"stream_options": {"continuous_usage_stats": True}}, "stream_options"), ({"model": 3}, "`model`"),
])  # fmt: skip
def test_the_allowlist_and_caps_refuse_what_is_not_served(extra: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        check("chat.completions", {**CHAT, **extra}, POLICY)


def test_a_request_without_max_tokens_gets_the_cap() -> None:
    assert check("chat.completions", CHAT, POLICY)["max_tokens"] == 64
    parts = {**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 5, "n": 2}
    assert check("chat.completions", parts, POLICY) == parts
    assert check("completions", {"model": "m", "prompt": ["a", "b"]}, POLICY)["max_tokens"] == 64
    with pytest.raises(PolicyError, match="`prompt` must be text"):
        check("completions", {"model": "m", "prompt": [1, 2, 3]}, POLICY)
    with pytest.raises(PolicyError, match="unsupported field"):
        check("completions", {"model": "m", "prompt": "x", "messages": []}, POLICY)
    assert json.loads(json.dumps(check("completions", {"model": "m", "prompt": "x", "logprobs": 2}, POLICY)))["logprobs"] == 2
