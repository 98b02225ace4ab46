"""The platform chart, rendered through Helm's own Go SDK (helm-python-sdk, no helm binary):
every object of several value sets validates strictly against two Kubernetes versions, the
chart lints clean, unknown values are refused by its schema, every value is documented,
secrets are only referenced, and the Role grants exactly what the launcher calls."""

from __future__ import annotations

import re

import helm_python as helm
import pytest
import yaml

from domainllm.k8s.rbac import LAUNCHER_RULES
from domainllm.k8s.validate import DEFAULT_VERSIONS, validate_objects
from tests.conftest import REPO

CHART = REPO / "helm" / "domainllm"
VALUE_SETS = {
    "defaults": {},
    "existing-claim-private-registry": {
        "images": {"registry": "registry.internal:5000", "repository": "ml/domainllm", "tag": "0.1.0-rc1",
                   "pullPolicy": "Always", "pullSecrets": ["regcred"]},
        "home": {"existingClaim": "shared-nfs", "mountPath": "/data/domainllm"},
        "specs": {"files": {"spec.yaml": (REPO / "examples/demo/spec.yaml").read_text(),
                            "spec.k8s.yaml": (REPO / "examples/demo/spec.k8s.yaml").read_text()},
                  "default": "/etc/domainllm/specs/spec.k8s.yaml"},
        "airflow": {"apiServer": {"replicas": 1}, "extraEnv": {"AIRFLOW__CORE__DAG_CONCURRENCY": "16"},
                    "extraEnvFrom": ["airflow-extra"]},
        "serviceAccounts": {"stageAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/domainllm"}},
    },
}  # fmt: skip


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
    docs = render(VALUE_SETS["existing-claim-private-registry"])
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
