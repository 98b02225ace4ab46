"""The chart's NetworkPolicies, read the way a cluster applies them: a small evaluator of the
rendered policies (podSelector, namespaceSelector and ipBlock peers, ports, both directions)
answers "may A open a connection to B on port P" for the chart's pods, the stage pods the
launcher makes (their labels from the launcher's own rendering) and outside addresses."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from domainllm.k8s.render import render_run
from domainllm.spec import load_spec
from tests.conftest import REPO
from tests.helm.test_chart import REQUIRED, VALUE_SETS, merged, render

NS = "ml"


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace and labels), or an address outside the cluster (namespace None)."""

    namespace: str | None
    labels: dict[str, str] = field(default_factory=dict, hash=False)


OUTSIDE = Endpoint(None)  # a managed database, the object store, the API server's address
STRANGER = Endpoint(NS, {"app": "someone-else"})  # another workload in the release's namespace
INGRESS_CONTROLLER = Endpoint("ingress", {"app.kubernetes.io/name": "ingress-nginx"})
DNS = Endpoint("kube-system", {"k8s-app": "kube-dns"})


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def peer_matches(peer: dict, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return other.namespace is None and peer["ipBlock"]["cidr"] == "0.0.0.0/0"
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": other.namespace})
    else:
        in_namespace = other.namespace == NS
    return in_namespace and selects(peer.get("podSelector", {}), other.labels)


def admits(policies: list[dict], kind: str, pod: Endpoint, other: Endpoint, port: int, protocol: str) -> bool:
    """`kind` Ingress: may `other` reach `pod`; Egress: may `pod` reach `other`."""
    if pod.namespace != NS:
        return True  # not the chart's to govern
    rules_key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    isolating = [p for p in policies if kind in p["policyTypes"] and selects(p["podSelector"], pod.labels)]
    if not isolating:
        return True
    for rule in (r for p in isolating for r in p.get(rules_key, [])):
        if "ports" in rule and not any(
            p["port"] == port and p.get("protocol", "TCP") == protocol for p in rule["ports"]
        ):
            continue
        if peers_key not in rule or any(peer_matches(peer, other) for peer in rule[peers_key]):
            return True
    return False


def connects(policies: list[dict], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    return admits(policies, "Egress", src, dst, port, protocol) and admits(
        policies, "Ingress", dst, src, port, protocol
    )


def cluster(values: dict) -> tuple[list[dict], dict[str, Endpoint]]:
    """The policies, and each of the chart's pods by component."""
    docs = render(values)
    policies = [
        {**d["spec"], "name": d["metadata"]["name"].removeprefix("rel-domainllm-")}
        for d in docs
        if d["kind"] == "NetworkPolicy"
    ]
    pods = {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: Endpoint(NS, d["spec"]["template"]["metadata"]["labels"])
            for d in docs if d["kind"] in ("Deployment", "Job")}  # fmt: skip
    if values.get("serving", {}).get("enabled"):  # the rollout stage's vLLM pods, in the release's namespace
        pods["vllm"] = Endpoint(NS, served_pod_labels())
    return policies, pods


def served_pod_labels() -> dict[str, str]:
    """The labels of a vLLM pod the rollout stage deploys (its own rendering)."""
    import os
    import tempfile

    from domainllm.serve.k8s.objects import vllm_deployment

    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        mp.setenv("DOMAINLLM_HOME", os.environ.get("DOMAINLLM_HOME") or tmp)
        spec = load_spec(REPO / "examples" / "demo" / "spec.k8s.yaml")
        return vllm_deployment(spec, "domainllm-vllm-v3", "3", "/m", "canary")["spec"]["template"]["metadata"]["labels"]


@pytest.fixture(scope="module")
def stage_pods(tmp_path_factory: pytest.TempPathFactory) -> list[Endpoint]:
    """Every distinct pod the launcher makes for the cluster demo (stages, multi-node training),
    placed in the release's namespace as the chart requires."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOMAINLLM_HOME", str(tmp_path_factory.mktemp("home")))
        items = render_run(load_spec(REPO / "examples" / "demo" / "spec.k8s.yaml"), "spec.k8s.yaml", "demo")
    made = [o["metadata"]["labels"] if o["kind"] == "Pod" else o["spec"]["template"]["metadata"]["labels"]
            for item in items for o in item.objects if o["kind"] in ("Pod", "Job")]  # fmt: skip
    distinct = {labels["app.kubernetes.io/component"]: labels for labels in made}
    assert set(distinct) == {"stage", "training"}
    return [Endpoint(NS, labels) for labels in distinct.values()]


def test_the_chart_pods_are_denied_both_ways_by_default_and_reach_dns() -> None:
    policies, pods = cluster(VALUE_SETS["defaults"])
    deny = next(p for p in policies if "ingress" not in p and "egress" not in p)
    assert deny["policyTypes"] == ["Ingress", "Egress"] and deny["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/instance": "rel"}
    }
    assert set(pods) == {
        "airflow-api",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-migrate",
        "mlflow",
    }
    assert {p["name"] for p in cluster(VALUE_SETS["serving-retrieval"])[0]} == {
        "default-deny",
        "dns",
        "airflow-api",
        "airflow-logs",
        "airflow-egress",
        "mlflow",
        "mlflow-egress",
        "gateway",
        "gateway-egress",
        "vllm",
    }
    for pod in pods.values():
        assert connects(policies, pod, DNS, 53, "UDP") and connects(policies, pod, DNS, 53, "TCP")
        assert not connects(policies, pod, Endpoint("kube-system", {"k8s-app": "metrics-server"}), 53, "UDP")
        assert not connects(policies, pod, OUTSIDE, 22) and not connects(policies, STRANGER, pod, 9000)


def test_platform_pods_always_reach_the_airflow_api_whoever_else_may(stage_pods: list[Endpoint]) -> None:
    """Airflow 3's task execution API is the API server's: with clientPeers set as docs/deploy.md
    recommends, the scheduler, triggerer, dag-processor (and the stage pods) still reach it."""
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]
    for values, stranger_too in (
        (merged(REQUIRED, {"networkPolicies": {"clientPeers": peers}}), False),
        (VALUE_SETS["defaults"], True),
    ):
        policies, pods = cluster(values)
        api = pods["airflow-api"]
        for pod in [
            pods[c]
            for c in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-api")
        ] + stage_pods:
            assert connects(policies, pod, api, 8080), pod.labels
        assert connects(policies, INGRESS_CONTROLLER, api, 8080)
        assert connects(policies, STRANGER, api, 8080) is stranger_too
        assert not connects(policies, INGRESS_CONTROLLER, api, 8793)
        assert connects(policies, api, pods["airflow-scheduler"], 8793) and not connects(
            policies, STRANGER, pods["airflow-scheduler"], 8793
        )


def test_airflow_reaches_its_database_the_api_server_mlflow_and_nothing_else() -> None:
    policies, pods = cluster(VALUE_SETS["defaults"])
    for name in (
        "airflow-scheduler",
        "airflow-api",
        "airflow-triggerer",
        "airflow-dag-processor",
        "airflow-migrate",
    ):
        pod = pods[name]
        assert all(connects(policies, pod, OUTSIDE, port) for port in (5432, 443, 6443)), name
        assert connects(policies, pod, pods["mlflow"], 5000) and connects(
            policies, pod, pods["airflow-api"], 8080
        )
        assert not connects(policies, pod, OUTSIDE, 8080) and not connects(policies, pod, STRANGER, 9000)
        assert not connects(policies, pod, pods["airflow-api"], 9000)


def test_mlflow_reaches_its_stores_and_serves_the_platform_only(stage_pods: list[Endpoint]) -> None:
    policies, pods = cluster(VALUE_SETS["defaults"])
    mlflow = pods["mlflow"]
    assert connects(policies, mlflow, OUTSIDE, 5432) and connects(policies, mlflow, OUTSIDE, 443)
    assert not connects(policies, mlflow, OUTSIDE, 6443) and not connects(
        policies, mlflow, pods["airflow-api"], 8080
    )
    assert all(connects(policies, pod, mlflow, 5000) for pod in stage_pods + [pods["airflow-scheduler"]])
    assert not connects(policies, STRANGER, mlflow, 5000)


def test_serving_gateway_to_vllm_only_and_vllm_nowhere(stage_pods: list[Endpoint]) -> None:
    values = VALUE_SETS["serving-retrieval"]  # clientPeers set, retrieval on
    policies, pods = cluster(values)
    gateway, vllm = pods["gateway"], [pods["vllm"]]
    for backend in vllm:
        assert connects(policies, gateway, backend, 8000) and all(
            connects(policies, pod, backend, 8000) for pod in stage_pods
        )
        assert not connects(policies, STRANGER, backend, 8000) and not connects(
            policies, gateway, backend, 8001
        )
        assert connects(policies, backend, DNS, 53, "UDP")
        for other, port in (
            (OUTSIDE, 443),
            (OUTSIDE, 80),
            (pods["mlflow"], 5000),
            (gateway, 8800),
            (STRANGER, 8000),
        ):
            assert not connects(
                policies, backend, other, port
            )  # the model is on the home volume: nothing to fetch
    assert connects(policies, gateway, OUTSIDE, 5432)  # the pgvector knowledge store (augment set)
    assert not connects(policies, gateway, pods["mlflow"], 5000) and not connects(
        policies, gateway, OUTSIDE, 6443
    )
    no_retrieval, pods_plain = cluster(merged(REQUIRED, {"serving": {"enabled": True}}))
    assert not connects(no_retrieval, pods_plain["gateway"], OUTSIDE, 5432)


def test_the_gateway_api_takes_clients_and_the_platform_and_its_admin_port_the_platform_only(
    stage_pods: list[Endpoint],
) -> None:
    prometheus = Endpoint("monitoring", {"app.kubernetes.io/name": "prometheus"})
    scrapers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    for extra, stranger_too in (
        ({}, True),
        ({"clientPeers": VALUE_SETS["serving-retrieval"]["networkPolicies"]["clientPeers"]}, False),
    ):
        policies, pods = cluster(merged(REQUIRED, {"serving": {"enabled": True}, "networkPolicies": extra}))
        gateway = pods["gateway"]
        assert (
            connects(policies, INGRESS_CONTROLLER, gateway, 8800)
            and connects(policies, STRANGER, gateway, 8800) is stranger_too
        )
        for pod in stage_pods:  # the rollout's probes, the flywheel
            assert connects(policies, pod, gateway, 8800) and connects(policies, pod, gateway, 8801)
        assert not connects(policies, INGRESS_CONTROLLER, gateway, 8801) and not connects(
            policies, STRANGER, gateway, 8801
        )
        assert not connects(policies, prometheus, gateway, 8801)
    policies, pods = cluster(
        merged(REQUIRED, {"serving": {"enabled": True}, "networkPolicies": {"metricsPeers": scrapers}})
    )
    assert connects(policies, prometheus, pods["gateway"], 8801) and not connects(
        policies, STRANGER, pods["gateway"], 8801
    )


def test_stage_pods_are_left_to_the_cluster(stage_pods: list[Endpoint]) -> None:
    """Not selected by any policy: the ranks of a training job reach each other on the ports NCCL
    picks, and the stages reach the object store and the model hubs the spec names."""
    policies, _ = cluster(VALUE_SETS["defaults"])
    for pod in stage_pods:
        assert "app.kubernetes.io/instance" not in pod.labels
        assert not [p for p in policies if selects(p["podSelector"], pod.labels)]
        assert connects(policies, pod, OUTSIDE, 443) and all(
            connects(policies, pod, other, 29500) for other in stage_pods
        )


def test_egress_rules_take_the_peers_and_ports_given_or_stay_open_when_asked() -> None:
    database = {"peers": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [5432, 6432]}
    policies, pods = cluster(merged(REQUIRED, {"networkPolicies": {"egress": {"database": database}}}))
    mlflow_egress = next(p for p in policies if p["name"] == "mlflow-egress")
    assert mlflow_egress["egress"][0] == {
        "ports": [{"port": 5432, "protocol": "TCP"}, {"port": 6432, "protocol": "TCP"}],
        "to": database["peers"],
    }
    assert not connects(policies, pods["mlflow"], OUTSIDE, 5432)  # OUTSIDE is no address in 10.20.0.0/16
    policies, pods = cluster(VALUE_SETS["development"])  # egress.enabled: false
    assert [p["policyTypes"] for p in policies if "ingress" not in p and "egress" not in p] == [["Ingress"]]
    assert not [p for p in policies if "Egress" in p["policyTypes"]]
    assert connects(policies, pods["vllm"], OUTSIDE, 443) and not connects(policies, STRANGER, pods["vllm"], 8000)
    assert not [d for d in render(VALUE_SETS["no-network-policies"]) if d["kind"] == "NetworkPolicy"]


def test_the_evaluator_reads_ports_and_peers_as_a_cluster_does() -> None:
    """The evaluator itself, on hand-made policies: isolation needs a selecting policy, rules
    add up, a rule without ports or peers means any."""
    pod = Endpoint(NS, {"app": "x"})
    only_ingress = [{"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"port": 80}]}]}]  # fmt: skip
    assert connects(only_ingress, STRANGER, pod, 80) and not connects(only_ingress, STRANGER, pod, 81)
    assert connects(only_ingress, pod, OUTSIDE, 22)  # egress not isolated
    assert connects([], STRANGER, pod, 1)
