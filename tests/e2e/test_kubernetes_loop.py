"""The loop on a cluster: the same DAGs with the Kubernetes launcher against the fake API
server, whose kubelet runs every pod as a real local process (stages, the chart's two gateway
replicas, vLLM's CPU build) on a network that resolves Services and pod IPs
(tests/operators/launchers/fake_cluster.py). No cluster runs here: this is as close as this
machine gets.

The first version is trained in this process and rolled out on the cluster by the rollout
stage (its Deployment, its Service, the routes ConfigMap the chart's gateway mounts). Users
ask through the gateway's Service and rate answers; `data_flywheel` runs its stages as pods
(deferred: the triggerer waits on them), samples the production version through its
in-cluster Service, and its Asset event starts a `domain_llm` round whose rollout pod deploys
the new version as a canary at 10 -> 50 -> 100 %, each step judged on the metrics of both
gateway replicas and on the users' votes. While users down-vote the canary it is rolled back
(its Deployment deleted, the routes back to the stable version, the run failed); a person
clears the rollout task, users now rate both versions alike, and the canary is promoted:
`production` moves, the old version's Deployment and Service are gone."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from domainllm.artifacts import RunLayout
from domainllm.demo.traffic import questions, send
from domainllm.evals.registry import PRODUCTION, by_alias
from domainllm.flywheel.window import window_run_id
from domainllm.k8s.api import SERVING_RULES, Api
from domainllm.serve.gateway.auth import add_key
from domainllm.serve.k8s.traffic import ClusterTraffic
from domainllm.serve.vllm_server import LAUNCHER, vllm_python
from domainllm.spec import load_spec
from domainllm.stages.names import DOMAIN_STAGES
from domainllm.stages.runner import run_stage
from tests.conftest import tiny_spec_doc, write_spec
from tests.helm.test_chart import REQUIRED, merged, render
from tests.lib.evals.vllm_helpers import needs_vllm
from tests.operators.launchers.fake_cluster import Cluster, ClusterApiServer

pytestmark = [pytest.mark.slow, needs_vllm, pytest.mark.timeout(1800)]

NS = "ml"  # the chart's release namespace in tests/helm
GATEWAY = "rel-domainllm-gateway"


def _spec(corpora: Path, home: Path, tmp_path: Path, spec_dir: Path) -> Path:
    doc = tiny_spec_doc(corpora)
    doc["base_model"]["demo"].update(hidden_size=64, intermediate_size=128)  # head size 32: what vLLM's CPU build serves
    doc["serving"] = {"enabled": True, "max_model_len": 512, "enforce_eager": True,
                      "rollout": {"steps": [10, 50, 100], "min_requests": 4, "probe_requests": 8, "probe_max_tokens": 4,
                                  "step_timeout_s": 240, "max_latency_ratio": 1000.0, "max_p95_latency_ratio": 1000.0,
                                  "min_votes": 6, "max_votes_per_principal": 5, "vote_wait_s": 150, "routes_timeout_s": 90}}  # fmt: skip
    doc["evals"].update({"code": {"enabled": False}, "choice": {"enabled": False}, "qa": {"enabled": False},
                         "decoding_search": {"enabled": False}})  # the gate reads perplexity: the other suites are tested elsewhere
    doc["evals"]["gate"]["rules"] = [  # better than the base on the domain, and no worse than the champion
        {"metric": "perplexity.domain.loss", "higher_is_better": False, "kind": "improve", "against": ["base"]},
        {"metric": "perplexity.domain.loss", "higher_is_better": False, "kind": "no_regression", "margin": 0.1,
         "relative": True, "against": ["champion"]}]  # fmt: skip
    doc["flywheel"] = {"min_new_pairs": 3, "sampling": {"samples_per_model": 1, "decoding": {"temperature": 1.0, "max_new_tokens": 16}},
                       "harvest": {"max_requests_per_principal_per_day": 10_000, "max_feedback_per_principal_per_day": 10_000}}
    doc["runtime"] = {"launcher": "kubernetes",
                      "images": {n: {"ref": f"registry.example.com/domainllm/{n}:test"} for n in ("worker", "trainer", "serve")},
                      "kubernetes": {"namespace": NS, "connection": "fake_k8s", "poll_interval_s": 0.5, "spec_mount_path": str(spec_dir),
                                     "home": {"claim": "domainllm-home", "mount_path": str(home)},
                                     "cache": {"mount_path": str(tmp_path / "cache")},
                                     "serving": {"gateway_service": GATEWAY, "routes_config_map": "rel-domainllm-routes",
                                                 "probe_key_secret": "domainllm-probe-key", "gpus": 0, "cpu": "1", "memory": "4Gi",
                                                 "startup_timeout_s": 600}}}  # fmt: skip
    return write_spec(spec_dir / "spec.yaml", doc)


class Users:
    """Users asking through the gateway's Service and rating every answer: `down` on the
    version named in `dislike`, up on the rest. They ask while a canary takes traffic, a few
    a second (two CPU cores serve everything here, new vLLM servers starting included)."""

    def __init__(self, url: str, model: str, keys: list[str], cluster: Cluster) -> None:
        self.url, self.model, self.keys, self.cluster = url, model, keys, cluster
        self.dislike: str | None = None
        self.rated: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Users:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            with self.cluster.lock:
                routes = (self.cluster.config_maps.get("rel-domainllm-routes") or {}).get("data", {}).get("routes.json")
            if not routes or not any(r["name"] == "canary" and r["weight"] > 0 for r in json.loads(routes)["routes"]):
                time.sleep(0.5)
                continue
            key = self.keys[n % len(self.keys)]
            n += 1
            headers = {"Authorization": f"Bearer {key}"}
            try:
                reply = httpx.post(f"{self.url}/v1/chat/completions", headers=headers, timeout=120,
                                   json={"model": self.model, "messages": [{"role": "user", "content": f"How do I do task {n}?"}],
                                         "max_tokens": 4})  # fmt: skip
                if reply.status_code != 200:
                    time.sleep(0.5)
                    continue
                version = reply.headers["x-model-version"]
                rating = "down" if version == self.dislike else "up"
                fb = httpx.post(f"{self.url}/v1/feedback", headers=headers, timeout=30,
                                json={"request_id": reply.headers["x-request-id"], "rating": rating})  # fmt: skip
                if fb.status_code == 202:
                    self.rated.append((version, rating))
            except httpx.HTTPError:
                time.sleep(0.5)
            time.sleep(0.2)


def test_the_loop_closes_on_the_cluster(home: Path, corpora: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from domainllm_operators.local_stack import LocalStack

    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    spec_path = _spec(corpora, home, tmp_path, spec_dir)
    spec = load_spec(spec_path)
    keys_file = tmp_path / "keys.json"
    limits = {"requests_per_minute": 6000, "concurrency": 16, "requests_per_day": 100_000, "feedback_per_day": 100_000}
    probe_key = add_key(keys_file, "rollout-probes", role="platform", limits=limits)
    user_keys = [add_key(keys_file, f"user-{i}", limits=limits) for i in range(4)]
    backend_key = secrets.token_hex(16)
    base_env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_DO_NOT_TRACK": "1",
                "VLLM_CACHE_ROOT": str(home / "cache" / "vllm"), "DOMAINLLM_HOME": str(home),
                **{k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "MLFLOW_", "DO_NOT", "TORCH"))}}  # fmt: skip
    cluster = Cluster(tmp_path / "kubelet", claims={"domainllm-home": str(home), "rel-domainllm-home": str(home)}, namespace=NS, base_env=base_env,
                      commands={"domainllm": [sys.executable, "-m", "domainllm"], "/opt/vllm/bin/vllm": [str(vllm_python()), str(LAUNCHER)]})  # fmt: skip
    stack = None
    with ClusterApiServer(cluster) as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))
        cluster.kubeconfig_path = str(kubeconfig)  # what the rollout pod's service account token reaches
        for name, value in {"KUBECONFIG": str(kubeconfig), "HTTP_PROXY": cluster.network.url, "NO_PROXY": "127.0.0.1,localhost",
                            "DOMAINLLM_BACKEND_API_KEY": backend_key, "DOMAINLLM_GATEWAY_KEY": probe_key}.items():  # fmt: skip
            monkeypatch.setenv(name, value)  # this process: the first version's stages, in a pod's place
        cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "domainllm-vllm-api-key"}, "stringData": {"api-key": backend_key}})
        cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "domainllm-probe-key"}, "stringData": {"api-key": probe_key}})
        cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "domainllm-gateway-auth"},
                       "stringData": {"keys.json": keys_file.read_text(), "signing.secret": secrets.token_hex(32)}})  # fmt: skip
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "domainllm-specs"}, "data": {"spec.yaml": spec_path.read_text()}})
        chart = render(merged(REQUIRED, {"home": {"mountPath": str(home)},
                                         "serving": {"enabled": True, "modelName": spec.name, "gateway": {"logRoot": f"{home}/artifacts/serving-logs"}}}))  # fmt: skip
        for obj in chart:
            if obj["kind"] in ("Deployment", "Service") and obj["metadata"]["name"] == GATEWAY:
                cluster.apply(obj)
        gateway_url = f"http://{GATEWAY}.{NS}.svc.cluster.local:8800"

        for stage in DOMAIN_STAGES:  # the first version, trained in this process (faster) and rolled out on the cluster
            run_stage(spec, stage, "r1")
        layout = RunLayout(spec.artifact_root, "r1")
        first = layout.read_manifest("rollout").info
        assert first["result"] == "first" and by_alias(spec, PRODUCTION).version == "1"
        assert first["gateway_url"] == gateway_url and "domainllm-vllm-v1" in cluster.deployments

        stack = LocalStack()
        stack.env["AIRFLOW_CONN_FAKE_K8S"] = json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}})
        try:
            stack.start()
            start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
            traffic = send(gateway_url, spec.name, questions(corpora / "perl-synopses.jsonl", 12), api_key=user_keys[0], max_tokens=16)
            assert traffic.answered == traffic.requests > 10 and traffic.feedback > 0
            time.sleep(2)  # the gateway's log writer flushes every 0.5 s
            end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
            after = dt.datetime.now(dt.UTC).isoformat()
            stack.unpause("domain_llm")
            seen_before = len(cluster.network.seen)
            flywheel = stack.trigger("data_flywheel", {"spec": str(spec_path), "start": start.isoformat(), "end": end.isoformat()})
            assert stack.follow("data_flywheel", flywheel, timeout=900, echo=print) == "success", stack.task_states("data_flywheel", flywheel)
            fw = RunLayout(spec.artifact_root, window_run_id({"window_start": start.isoformat(), "window_end": end.isoformat()}))
            assert fw.read_manifest("harvest").counts["harvested"] == traffic.requests  # read from the gateway pods' log on the shared volume
            assert any(name.startswith("alias:production@1") for name in fw.read_manifest("sample").info["models"])
            asked_v1 = [path for host, path in cluster.network.seen[seen_before:] if host.startswith("domainllm-vllm-v1.")]
            assert any(p.endswith("/completions") for p in asked_v1)  # production sampled through its in-cluster Service
            round_run = stack.triggered_run("domain_llm", after)

            with Users(gateway_url, spec.name, user_keys, cluster) as users:
                users.dislike = "2"  # the new version's answers, as users see them
                assert stack.follow("domain_llm", round_run, timeout=1200, echo=print) == "failed"
                states = stack.task_states("domain_llm", round_run)
                assert states["gate"] == "success" and states["rollout"] == "failed", states
                assert "domainllm-vllm-v2" not in cluster.deployments and by_alias(spec, PRODUCTION).version == "1"
                routes = json.loads(cluster.config_maps["rel-domainllm-routes"]["data"]["routes.json"])["routes"]
                assert [(r["name"], r["version"]) for r in routes] == [("stable", "1")]
                assert ("2", "down") in users.rated

                users.dislike = None  # users like both alike now: a person retries the rollout
                stack._request("POST", "/api/v2/dags/domain_llm/clearTaskInstances",
                               {"dag_run_id": round_run, "task_ids": ["rollout"], "include_downstream": True, "only_failed": False,
                                "dry_run": False, "reset_dag_runs": True})  # fmt: skip
                time.sleep(3)
                assert stack.follow("domain_llm", round_run, timeout=1200, echo=print) == "success", stack.task_states("domain_llm", round_run)
            per_replica = ClusterTraffic(spec, Api(NS)).snapshot()  # what the rollout judged on: each gateway pod's counters
            assert len(per_replica) == 2 and all(r["canary"].requests > 0 for r in per_replica.values())
        except BaseException:
            print(cluster.dump())  # what the pods said: the cluster goes with the test
            raise
        finally:
            stack.stop()

    rollout = layout.read_manifest("rollout")
    assert rollout.info["result"] == "promoted" and rollout.info["version"] == "2" and rollout.info["previous"] == "1"
    record = json.loads(Path(layout.stage_dir("rollout"), "rollout.json").read_text())
    assert [s["percent"] for s in record["steps"]] == [10, 50, 100] and all(s["passed"] for s in record["steps"])
    assert all(s["quality"]["canary"]["votes"] >= 6 and s["quality"]["canary"]["downs"] == 0 for s in record["steps"])
    assert by_alias(spec, PRODUCTION).version == "2"
    assert "domainllm-vllm-v1" not in cluster.deployments and "domainllm-vllm-v1" not in cluster.services
    assert cluster.deployments["domainllm-vllm-v2"]["metadata"]["labels"]["domainllm/track"] == "stable"
    allowed = {(g, r, v) for (g, r), verbs in SERVING_RULES.items() for v in verbs}
    rollout_calls = {c for c in cluster.authorized if c[1] in ("deployments", "configmaps", "endpointslices")}
    assert rollout_calls <= allowed
