"""The platform chart, rendered through Helm's own Go SDK (helm-python-sdk, no helm binary):
every object of several value sets validates strictly against two Kubernetes versions, the
chart lints clean, unknown values are refused by its schema, every value is documented,
secrets are only referenced, and the Role grants exactly what the launcher calls."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from domainllm.k8s.rbac import LAUNCHER_RULES
from domainllm.k8s.validate import DEFAULT_VERSIONS, validate_objects
from domainllm.serve.gateway.routes import read_routes
from tests.conftest import REPO

CHART = REPO / "helm" / "domainllm"
VALUE_SETS = {
    "defaults": {},
    "external-db-s3-private-registry": {
        "images": {"registry": "registry.internal:5000", "repository": "ml/domainllm", "tag": "0.1.0-rc1",
                   "pullPolicy": "Always", "pullSecrets": ["regcred"]},
        "home": {"existingClaim": "shared-nfs", "mountPath": "/data/domainllm"},
        "specs": {"files": {"spec.yaml": (REPO / "examples/demo/spec.yaml").read_text(),
                            "spec.k8s.yaml": (REPO / "examples/demo/spec.k8s.yaml").read_text()},
                  "default": "/etc/domainllm/specs/spec.k8s.yaml"},
        "airflow": {"apiServer": {"replicas": 1}, "extraEnv": {"AIRFLOW__CORE__DAG_CONCURRENCY": "16"},
                    "extraEnvFrom": ["airflow-extra"]},
        "serviceAccounts": {"stageAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/domainllm"}},
        "mlflow": {"backendSecretName": "rds-mlflow", "artifactsDestination": "s3://ml-artifacts/mlflow",
                   "artifactsSecretName": "s3-credentials"},
    },
    "gpu-canary": {
        "serving": {"enabled": True, "vllm": {"replicas": 2, "gpus": 2, "args": ["--max-model-len", "8192"],
                                              "canary": {"weight": 10}},
                    "gateway": {"augment": {"knowledge": {"store": {"backend": "pgvector", "uri": "postgresql://kb@pg:5432/kb",
                                                                    "table": "perl_assistant", "version": "run-1", "password_env": "KB_PASSWORD"},
                                                          "embedding": "/var/lib/domainllm/models/all-minilm-l6-v2"},
                                            "routes": {"default": {"retrieval": {"enabled": True, "k": 4}}}}}},
        "gpuNodePool": {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
        "networkPolicies": {"clientPeers": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]},
    },
    "no-network-policies": {"networkPolicies": {"enabled": False}, "serving": {"enabled": True}},
}  # fmt: skip


def read_routes_from(text: str) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "routes.json"
        path.write_text(text)
        return read_routes(path)


def render(values: dict) -> list[dict]:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name="rel", namespace="ml")
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith(".yaml") and "/tests/" not in path:
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_object_validates_strictly(name: str) -> None:
    docs = render(VALUE_SETS[name])
    findings = validate_objects([(f"{d['kind']}/{d['metadata']['name']}", d) for d in docs], DEFAULT_VERSIONS)
    assert [f for f in findings if f.status != "valid"] == []
    assert all(d["metadata"].get("namespace") == "ml" for d in docs)
    assert "Secret" not in {d["kind"] for d in docs}  # referenced by name, never rendered


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_is_clean(name: str) -> None:
    report = helm.lint(str(CHART), VALUE_SETS[name], strict=True)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_role_grants_exactly_what_the_launcher_calls() -> None:
    (role,) = [d for d in render({}) if d["kind"] == "Role"]
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {(g, r, v) for (g, r), verbs in LAUNCHER_RULES.items() for v in verbs}
    (binding,) = [d for d in render({}) if d["kind"] == "RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "domainllm-airflow", "namespace": "ml"}]
    assert not [d for d in render({}) if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_unknown_values_are_refused() -> None:
    with pytest.raises(helm.HelmValuesError, match="additional properties 'tga' not allowed"):
        render({"images": {"tga": "0.2.0"}})
    with pytest.raises(helm.HelmValuesError):
        render({"airflow": {"scheduler": {"resources": {"cpu": "lots", "memory": "1Gi"}}}})


def test_every_value_is_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z][\w.-]*:", line):
            above = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            assert above.startswith("#"), f"values.yaml:{i + 1}: {line.strip()!r} has no comment"


def test_images_come_from_one_place_and_pods_are_locked_down() -> None:
    docs = render(VALUE_SETS["external-db-s3-private-registry"])
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]
    images = {c["image"] for p in pods for c in p["containers"]}
    assert images == {"registry.internal:5000/ml/domainllm/airflow:0.1.0-rc1", "registry.internal:5000/ml/domainllm/worker:0.1.0-rc1"}
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] and pod["imagePullSecrets"] == [{"name": "regcred"}]
        for c in pod["containers"]:
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"] and ctx["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"] == c["resources"]["limits"]
    scheduler = next(d for d in docs if d["metadata"]["name"].endswith("airflow-scheduler"))["spec"]["template"]["spec"]
    claim = next(v for v in scheduler["volumes"] if v["name"] == "home")["persistentVolumeClaim"]["claimName"]
    assert claim == "shared-nfs" and not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    env = {e["name"]: e for e in scheduler["containers"][0]["env"]}
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]["valueFrom"]["secretKeyRef"]["name"] == "domainllm-airflow-db"
    assert env["DOMAINLLM_HOME"]["value"] == "/data/domainllm" and env["AIRFLOW__CORE__EXECUTOR"]["value"] == "LocalExecutor"
    specs = next(d for d in docs if d["kind"] == "ConfigMap")
    assert set(specs["data"]) == {"spec.yaml", "spec.k8s.yaml"} and "extends: spec.yaml" in specs["data"]["spec.k8s.yaml"]


def test_serving_splits_traffic_by_the_canary_weight_on_gpu_nodes() -> None:
    docs = render(VALUE_SETS["gpu-canary"])
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    routes = json.loads(by_name["ConfigMap", "rel-domainllm-routes"]["data"]["routes.json"])["routes"]
    assert [(r["name"], r["version"], r["weight"]) for r in routes] == [("stable", "1", 100), ("canary", "2", 10)]
    assert routes[1]["base_url"] == "http://rel-domainllm-vllm-canary:8000/v1"
    read_routes_from(by_name["ConfigMap", "rel-domainllm-routes"]["data"]["routes.json"])  # the gateway's own parser takes it
    augment = json.loads(by_name["ConfigMap", "rel-domainllm-routes"]["data"]["augment.json"])  # beside routes.json, as the gateway reads it
    assert augment["knowledge"]["store"]["backend"] == "pgvector" and augment["routes"]["default"]["retrieval"]["k"] == 4
    canary = by_name["Deployment", "rel-domainllm-vllm-canary"]["spec"]["template"]["spec"]
    vllm = canary["containers"][0]
    assert vllm["args"][:3] == ["/var/lib/domainllm/artifacts/registry/perl-assistant/v2", "--served-model-name", "perl-assistant"]
    assert vllm["args"][-2:] == ["--max-model-len", "8192"] and "--tensor-parallel-size" in vllm["args"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 2 and vllm["startupProbe"]["failureThreshold"] == 120
    assert canary["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"} and canary["tolerations"]
    assert {name for kind, name in by_name if kind == "PodDisruptionBudget"} == {
        "rel-domainllm-airflow-api", "rel-domainllm-gateway", "rel-domainllm-vllm-stable", "rel-domainllm-vllm-canary"}
    no_canary = render({"serving": {"enabled": True}})
    assert not [d for d in no_canary if d["metadata"]["name"].endswith("vllm-canary")]  # weight 0: not deployed


def test_network_policies_deny_by_default_and_open_what_each_serves() -> None:
    docs = render(VALUE_SETS["gpu-canary"])
    policies = {d["metadata"]["name"].removeprefix("rel-domainllm-"): d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert set(policies) == {"default-deny", "airflow-api", "airflow-logs", "mlflow", "gateway", "vllm"}
    assert "ingress" not in policies["default-deny"] and policies["default-deny"]["policyTypes"] == ["Ingress"]
    assert policies["vllm"]["ingress"][0]["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert policies["gateway"]["ingress"][0]["from"] == VALUE_SETS["gpu-canary"]["networkPolicies"]["clientPeers"]
    assert not [d for d in render(VALUE_SETS["no-network-policies"]) if d["kind"] == "NetworkPolicy"]
