"""The running gateway as a stranger meets it (a stand-in backend answers at once, so these
tests are about the gateway alone): no key or a wrong key -> 401 in OpenAI's error shape;
fields outside the allowlist, caps and oversized bodies refused; ids issued by the gateway
(a client's own x-request-id ignored), feedback only from the key that got the answer, once;
rate limits with retry-after; the source header honoured for platform keys only; the
client's key never forwarded or logged; metrics and details only on the admin port."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from domainllm.serve.gateway.auth import add_key
from domainllm.serve.gateway.routes import Route, write_routes
from tests.lib.serve.gateway.helpers import records, running_gateway, stub_backend

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "What does List::Util do?"}], "max_tokens": 8}



def test_a_stranger_meets_the_gateway(tmp_path: Path) -> None:
    routes, logs = tmp_path / "routes.json", tmp_path / "logs"
    with stub_backend() as (backend, seen):
        write_routes(routes, [Route("stable", backend, "1", 100)])
        with running_gateway(routes, logs, policy={"max_body_bytes": 4096, "max_tokens": 16},
                             limits={"other": {"requests_per_minute": 2}}, env={"DOMAINLLM_BACKEND_API_KEY": "backend-secret"}) as gw:  # fmt: skip
            # no key, a wrong key, a key in the wrong scheme: 401 in OpenAI's shape
            for headers in ({}, {"Authorization": "Bearer dlm-not-a-key-at-all-xxxxxxxxxxxx"}, {"Authorization": f"Basic {gw.keys['user']}"}):
                r = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers=headers)
                assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key" and r.headers["www-authenticate"] == "Bearer"
            assert httpx.get(f"{gw.url}/v1/models").status_code == 401
            assert httpx.post(f"{gw.url}/v1/feedback", json={"request_id": "x", "rating": "up"}).status_code == 401
            with gw.client("user") as user, gw.client("other") as other, gw.client("platform") as platform:
                assert user.get("/v1/models").json()["data"][0]["id"] == "tiny"
                ok = user.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "client-chosen-1", "x-domainllm-source": "rollout-probe"})
                assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"].startswith("You asked")
                rid = ok.headers["x-request-id"]
                assert rid != "client-chosen-1" and rid.startswith("r1.")  # issued by the gateway, never chosen by the client
                # what reached the backend: the policy's max_tokens default, the backend's own key, not the client's
                assert seen[-1]["authorization"] == "Bearer backend-secret" and gw.keys["user"] not in json.dumps(seen)
                assert user.post("/v1/completions", json={"model": "tiny", "prompt": "x"}).status_code == 200
                assert seen[-1]["body"]["max_tokens"] == 16
                # the allowlist and the caps
                bad = user.post("/v1/chat/completions", json={**CHAT, "chat_template": "{{ 7 * 7 }}"})
                assert bad.status_code == 400 and bad.json()["error"]["param"] == "chat_template" and "unsupported field" in bad.text
                assert user.post("/v1/chat/completions", json={**CHAT, "max_tokens": 17}).status_code == 400
                assert user.post("/v1/chat/completions", json={**CHAT, "n": 5}).status_code == 400
                huge = user.post("/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]})
                assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
                assert user.post("/v1/chat/completions", content=b"not json").status_code == 400
                # feedback: the answer's own key, once; another key's, forged and made-up ids all look the same (404)
                assert other.post("/v1/feedback", json={"request_id": rid, "rating": "down"}).status_code == 404
                forged = rid[:-1] + ("0" if rid[-1] != "0" else "1")
                assert user.post("/v1/feedback", json={"request_id": forged, "rating": "down"}).status_code == 404
                assert user.post("/v1/feedback", json={"request_id": "client-chosen-1", "rating": "down"}).status_code == 404
                assert user.post("/v1/feedback", json={"request_id": rid, "rating": "meh"}).status_code == 400
                assert user.post("/v1/feedback", json={"request_id": rid, "rating": "up", "extra": 1}).status_code == 400
                first = user.post("/v1/feedback", json={"request_id": rid, "rating": "down", "preferred": "Use List::Util's sum."})
                assert first.status_code == 202
                replay = user.post("/v1/feedback", json={"request_id": rid, "rating": "up"})
                assert replay.status_code == 409 and replay.json()["error"]["code"] == "already_rated"
                # rate limit: `other` may make 2 requests a minute (its 404 feedback above did not spend any)
                codes = [other.post("/v1/chat/completions", json=CHAT).status_code for _ in range(3)]
                assert codes == [200, 200, 429]
                limited = other.post("/v1/chat/completions", json=CHAT)
                assert limited.json()["error"]["code"] == "rate_limit_exceeded" and int(limited.headers["retry-after"]) >= 1
                # the platform's key may mark its traffic; a user's marking was ignored
                assert platform.post("/v1/chat/completions", json=CHAT, headers={"x-domainllm-source": "rollout-probe"}).status_code == 200
                # a key added while the gateway runs works within a second; admin endpoints are not on the user port
                late = add_key(gw.keys_file, "late")
                time.sleep(1.2)
                assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {late}"}).status_code == 200
            assert httpx.get(f"{gw.url}/metrics").status_code == 404
            assert httpx.get(f"{gw.url}/health").json() == {"status": "ok"}
            health = httpx.get(f"{gw.admin_url}/health").json()
            assert health["keys"]["active"] == 4 and health["log_writer"]["alive"] and health["routes"][0]["name"] == "stable"
            metrics = httpx.get(f"{gw.admin_url}/metrics").text
            assert 'domainllm_gateway_refused_total{reason="invalid_api_key"} 5.0' in metrics
            assert 'domainllm_gateway_refused_total{reason="unknown_request_id"} 3.0' in metrics
            requests = records(logs, "requests", 6)  # the answered ones: refusals are counted in the metrics, not logged
            feedback = records(logs, "feedback", 1)
        by_id = {r["request_id"]: r for r in requests}
        assert by_id[rid]["source"] == "user" and by_id[rid]["principal"].startswith("p-")
        assert {r["source"] for r in requests} == {"user", "rollout-probe"}
        assert len({r["principal"] for r in requests}) == 4  # user, other, platform, late
        assert feedback == [{**feedback[0], "request_id": rid, "rating": "down", "principal": by_id[rid]["principal"]}]
        written = "\n".join(p.read_text() for p in logs.rglob("*.jsonl"))
        for key in gw.keys.values():
            assert key not in written
