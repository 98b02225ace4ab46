"""Rollouts on a cluster, as close to one as this machine gets: the chart's own gateway
Deployment (2 replicas) and Service applied to the fake API server, whose kubelet runs every
pod as a real local process (the gateway, vLLM's CPU build) and whose network resolves
Services and pod IPs (tests/operators/launchers/fake_cluster.py). The rollout talks to the
API server over HTTP as it would in its pod.

The first version becomes `stable` once its Deployment is ready and answers; the second goes
10 -> 50 -> 100 % on the routes ConfigMap, each step started only once both gateway pods use
the new weights and judged on the metrics of both, and is promoted by relabelling (the old
version's Deployment and, through its owner reference, its Service are deleted); the third is
rolled back at its first step because users down-vote its answers, its Deployment deleted and
the stable version alone in the routes. The rollout made only the calls its Role allows."""

from __future__ import annotations

import secrets
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from domainllm.k8s.api import SERVING_RULES, Api
from domainllm.serve.gateway.auth import add_key
from domainllm.serve.k8s.deployments import ClusterDeployments
from domainllm.serve.k8s.traffic import ClusterTraffic
from domainllm.serve.quality import step_quality
from domainllm.serve.rollout import RolloutFailed, prober, roll_out
from domainllm.serve.vllm_server import LAUNCHER, vllm_python
from domainllm.spec import load_spec
from domainllm.spec.flywheel import HarvestConfig
from domainllm.spec.serving import RolloutConfig
from tests.conftest import tiny_spec_doc, write_spec
from tests.helm.test_chart import REQUIRED, merged, render
from tests.lib.evals.vllm_helpers import needs_vllm, tiny_chat_model
from tests.operators.launchers.fake_cluster import Cluster, ClusterApiServer

pytestmark = [pytest.mark.slow, needs_vllm]

NS = "ml"  # the chart's release namespace in tests/helm
MOUNT = "/var/lib/domainllm"  # the home volume where every pod mounts it (the kubelet maps it to `home`)


def _secret(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def _spec(corpora: Path, tmp_path: Path):
    doc = tiny_spec_doc(corpora)
    doc["serving"] = {"enabled": True, "max_model_len": 512, "enforce_eager": True}
    doc["runtime"] = {"launcher": "kubernetes",
                      "images": {n: {"ref": f"registry.example.com/domainllm/{n}:test"} for n in ("worker", "trainer", "serve")},
                      "kubernetes": {"namespace": NS, "home": {"claim": "domainllm-home", "mount_path": MOUNT},
                                     "serving": {"gateway_service": "rel-domainllm-gateway", "routes_config_map": "rel-domainllm-routes",
                                                 "gpus": 0, "cpu": "1", "memory": "4Gi", "startup_timeout_s": 300}}}  # fmt: skip
    return load_spec(write_spec(tmp_path / "spec.yaml", doc))


def test_first_promote_and_roll_back_on_the_cluster(home: Path, corpora: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(corpora, tmp_path)
    tiny_chat_model(home / "artifacts" / "registry" / "m")  # on the home volume, as the registry keeps versions
    in_cluster = f"{MOUNT}/artifacts/registry/m"
    keys_file, user_keys = tmp_path / "keys.json", {}
    platform = add_key(keys_file, "rollout-probes", role="platform")
    for i in range(4):
        user_keys[f"u{i}"] = add_key(keys_file, f"user-{i}")
    backend_key = secrets.token_hex(16)
    base_env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "VLLM_NO_USAGE_STATS": "1",
                "VLLM_DO_NOT_TRACK": "1", "VLLM_CACHE_ROOT": str(home / "cache" / "vllm")}  # fmt: skip
    cluster = Cluster(tmp_path / "kubelet", claims={"domainllm-home": str(home), "rel-domainllm-home": str(home)}, namespace=NS, base_env=base_env,
                      commands={"domainllm": [sys.executable, "-m", "domainllm"], "/opt/vllm/bin/vllm": [str(vllm_python()), str(LAUNCHER)]})  # fmt: skip
    with ClusterApiServer(cluster) as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("HTTP_PROXY", cluster.network.url)  # this test process sees the cluster's network, as a pod would
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("DOMAINLLM_BACKEND_API_KEY", backend_key)
        cluster.apply(_secret("domainllm-vllm-api-key", {"api-key": backend_key}))
        cluster.apply(_secret("domainllm-gateway-auth", {"keys.json": keys_file.read_text(), "signing.secret": secrets.token_hex(32)}))
        chart = render(merged(REQUIRED, {"serving": {"enabled": True}}))
        for obj in chart:
            if obj["kind"] in ("Deployment", "Service") and obj["metadata"]["name"] == "rel-domainllm-gateway":
                cluster.apply(obj)
        api = Api(NS)
        deployments, traffic = ClusterDeployments(spec, api, poll_s=0.5), ClusterTraffic(spec, api, poll_s=0.5)
        deadline = time.monotonic() + 120
        while len(traffic._gateway_pods()) < 2:
            assert time.monotonic() < deadline, f"the chart's gateway pods did not become ready: {cluster.logs}"
            time.sleep(0.5)

        def ask(key: str, text: str) -> httpx.Response:
            return httpx.post(f"{traffic.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=120,
                              json={"model": spec.name, "messages": [{"role": "user", "content": text}], "max_tokens": 4})  # fmt: skip

        cfg = RolloutConfig(steps=(10, 50, 100), min_requests=4, probe_requests=8, probe_max_tokens=4, step_timeout_s=120,
                            max_latency_ratio=1000.0, max_p95_latency_ratio=1000.0, routes_timeout_s=60)  # fmt: skip
        probe = prober(traffic.url, platform, spec.name, ["How do I sort a hash?", "What does chomp do?"], max_tokens=4)

        assert roll_out("1", in_cluster, cfg=cfg, deployments=deployments, traffic=traffic).result == "first"
        assert deployments.get("stable").version == "1" and "domainllm-vllm-v1" in cluster.services
        answered = {ask(user_keys["u0"], f"hello {i}").headers["x-model-version"] for i in range(4)}
        assert answered == {"1"}

        steps = []
        promoted = roll_out("2", in_cluster, cfg=cfg, deployments=deployments, traffic=traffic, probe=probe, on_step=steps.append)
        assert promoted.result == "promoted" and [s.percent for s in steps] == [10, 50, 100]
        assert all(s.verdict.passed and s.verdict.canary.requests >= 4 for s in steps)
        per_replica = traffic.snapshot()
        assert len(per_replica) == 2 and all(r["canary"].requests > 0 for r in per_replica.values())  # both replicas were counted
        assert deployments.get("stable").name == "domainllm-vllm-v2" and deployments.get("canary") is None
        assert "domainllm-vllm-v1" not in cluster.deployments and "domainllm-vllm-v1" not in cluster.services  # owner reference: gone with it
        routes, generation, _ = traffic.read()
        assert [(r.name, r.version, r.weight) for r in routes] == [("stable", "2", 100)] and generation > 0
        assert {ask(user_keys["u1"], f"hi {i}").headers["x-model-version"] for i in range(4)} == {"2"}

        # version 3: users down-vote its answers, up-vote version 2's
        stop, votes = threading.Event(), []

        def users() -> None:
            n = 0
            while not stop.is_set():
                key = list(user_keys.values())[n % len(user_keys)]
                reply = ask(key, f"question {n}")
                n += 1
                if reply.status_code == 200:
                    rating = "down" if reply.headers["x-model-version"] == "3" else "up"
                    fb = httpx.post(f"{traffic.url}/v1/feedback", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                                    json={"request_id": reply.headers["x-request-id"], "rating": rating})  # fmt: skip
                    votes.append((reply.headers["x-model-version"], fb.status_code))

        logs = str(home / "artifacts" / "serving-logs")  # the chart's gateway logRoot, a folder of the home volume

        def quality(since: float, canary: str, stable: str):
            return step_quality(logs, since, canary=canary, stable=stable, cfg=voted, harvest_cfg=HarvestConfig())

        voted = RolloutConfig(steps=(50, 100), min_requests=4, min_votes=6, max_votes_per_principal=5, vote_wait_s=90,
                              step_timeout_s=120, max_latency_ratio=1000.0, max_p95_latency_ratio=1000.0, routes_timeout_s=60)  # fmt: skip
        thread = threading.Thread(target=users, daemon=True)
        thread.start()
        try:
            with pytest.raises(RolloutFailed, match=r"(?s)version 3 rolled back at 50%: version 2 keeps all traffic.*too many down-votes") as err:
                roll_out("3", in_cluster, cfg=voted, deployments=deployments, traffic=traffic, quality=quality)
        finally:
            stop.set()
            thread.join(60)
        q = err.value.steps[0].verdict.quality
        assert q.canary.down_rate == 1.0 and q.stable.down_rate == 0.0 and q.canary.votes >= 6 and q.canary.principals >= 2
        assert {v for v, code in votes if code == 202} >= {"2", "3"}
        assert "domainllm-vllm-v3" not in cluster.deployments and deployments.get("stable").version == "2"
        routes, _, _ = traffic.read()
        assert [(r.name, r.version) for r in routes] == [("stable", "2")]
        assert {ask(user_keys["u2"], f"after {i}").headers["x-model-version"] for i in range(4)} == {"2"}

    allowed = {(g, r, v) for (g, r), verbs in SERVING_RULES.items() for v in verbs}
    assert cluster.authorized <= allowed, cluster.authorized - allowed  # only what the rollout's Role grants
    assert {("apps", "deployments", "patch"), ("apps", "deployments", "delete"), ("", "configmaps", "update")} <= cluster.authorized
    shutil.rmtree(home / "artifacts" / "registry", ignore_errors=True)
