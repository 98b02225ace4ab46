"""A canary step's votes read from the real gateway's request log: only users' votes on
answers they received count, the platform's probes never do, and one key counts at most
`max_votes_per_principal` per version, however many down-votes it sends on the canary. A
judge (a stub of a hosted one) scores a sample of each version's live answers."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from domainllm.serve.gateway.auth import add_key
from domainllm.serve.gateway.exchange import SOURCE_HEADER
from domainllm.serve.gateway.routes import Route, write_routes
from domainllm.serve.quality import step_quality
from domainllm.spec.flywheel import HarvestConfig
from domainllm.spec.serving import RolloutConfig
from tests.json_reply import reply_json
from tests.lib.serve.gateway.helpers import records, running_gateway, stub_backend


def _ask(client: httpx.Client, prompt: str, headers: dict | None = None) -> httpx.Response:
    reply = client.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": prompt}]},
                        headers=headers or {})  # fmt: skip
    assert reply.status_code == 200, reply.text
    return reply


def test_votes_per_version_from_the_log(tmp_path: Path) -> None:
    routes, logs = tmp_path / "routes.json", tmp_path / "logs"
    since = time.time() - 1
    with stub_backend() as (backend, _):
        write_routes(routes, [Route("stable", backend, "1", 50), Route("canary", backend, "2", 50)])
        with running_gateway(routes, logs) as gw:
            users = {f"u{i}": add_key(gw.keys_file, f"u{i}") for i in range(4)}
            attacker = add_key(gw.keys_file, "attacker")
            time.sleep(1.5)  # the keys file is reread within a second
            votes = 0
            for name, key in [*users.items(), ("attacker", attacker)]:
                with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
                    for i in range(6 if name != "attacker" else 30):
                        reply = _ask(client, f"question {i} from {name}")
                        on_canary = reply.headers["x-model-version"] == "2"
                        if name == "attacker" and not on_canary:
                            continue
                        rating = "down" if name == "attacker" or (name == "u0" and on_canary) else "up"
                        fb = client.post("/v1/feedback", json={"request_id": reply.headers["x-request-id"], "rating": rating})
                        assert fb.status_code == 202, fb.text
                        votes += 1
            with gw.client("platform") as platform:  # the rollout's probes: answered, never counted
                for i in range(5):
                    _ask(platform, f"probe {i}", {SOURCE_HEADER: "rollout-probe"})
            records(logs, "feedback", votes)
            requests = records(logs, "requests", 4 * 6 + 30 + 5)
    answers: dict[tuple[str, str], int] = {}  # (principal, version) -> answers it got
    for r in requests:
        if r.get("source", "user") == "user":
            answers[r["principal"], r["version"]] = answers.get((r["principal"], r["version"]), 0) + 1
    by_principal = {p: sum(n for (q, _), n in answers.items() if q == p) for p, _ in answers}
    bad = next(p for p, n in by_principal.items() if n == 30)
    cfg = RolloutConfig(max_votes_per_principal=3)
    q = step_quality(str(logs), since, canary="2", stable="1", cfg=cfg, harvest_cfg=HarvestConfig())
    # honest users voted on every answer, the attacker down on each canary answer it got: each counts at most 3 per version
    assert q.stable.votes == sum(min(3, n) for (p, v), n in answers.items() if v == "1" and p != bad)
    assert q.canary.votes == sum(min(3, n) for (p, v), n in answers.items() if v == "2")
    assert answers[bad, "2"] > 3 and q.stable.downs == 0
    assert 3 <= q.canary.downs <= 6  # the attacker's 3 (of its ~15) and u0's own, at most 3
    assert q.canary.principals == len({p for (p, v) in answers if v == "2"})


class _Grader(BaseHTTPRequestHandler):
    """A hosted judge: scores each answer's accuracy from the number in its question (1-5)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = int(re.search(r"question (\d+)", body["messages"][-1]["content"]).group(1))
        content = json.dumps({"accuracy": 1 + n % 5, "safety": 5})
        reply_json(self, 200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]})  # fmt: skip

    def log_message(self, *args) -> None:
        pass


def test_the_judge_scores_a_sample_of_each_versions_live_answers(tmp_path: Path) -> None:
    from domainllm.evals.endpoint import make_client
    from domainllm.evals.judge import Judge

    routes, logs = tmp_path / "routes.json", tmp_path / "logs"
    since = time.time() - 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grader)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with stub_backend() as (backend, _):
            write_routes(routes, [Route("stable", backend, "1", 50), Route("canary", backend, "2", 50)])
            with running_gateway(routes, logs) as gw, gw.client() as client:
                for i in range(20):
                    _ask(client, f"question {i}")
                requests = records(logs, "requests", 20)
        judge = Judge(make_client(f"http://127.0.0.1:{server.server_port}/v1", None), "grader", ("accuracy", "safety"))
        cfg = RolloutConfig(judge_sample=50)  # more than were served: every answer is scored
        q = step_quality(str(logs), since, canary="2", stable="1", cfg=cfg, harvest_cfg=HarvestConfig(), judge=judge)
    finally:
        server.shutdown()

    def expected(version: str) -> float:
        scores = [((1 + int(r["messages"][-1]["content"].split()[-1]) % 5 - 1) / 4 + 1) / 2 for r in requests if r["version"] == version]
        return sum(scores) / len(scores)

    served = {v: sum(1 for r in requests if r["version"] == v) for v in ("1", "2")}
    assert (q.canary.judged, q.stable.judged) == (served["2"], served["1"]) and q.canary.votes == 0
    assert abs(q.canary.judge_mean - expected("2")) < 1e-9 and abs(q.stable.judge_mean - expected("1")) < 1e-9
