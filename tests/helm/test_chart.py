"""The platform chart, rendered through Helm's own Go SDK (helm-python-sdk, no helm binary):
every object of several value sets validates strictly against two Kubernetes versions, the
chart lints clean, unknown values are refused by its schema, every value is documented,
secrets are only referenced, and the Role grants exactly what the launcher calls. Safe by
default: no install without a production Airflow auth manager, the gateway requires API keys
and a signing secret and serves its metrics apart, vLLM requires the gateway's key, MLflow
requires sign-in, each component has its own service account (network policies:
test_networkpolicies.py)."""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType

import helm_python as helm
import pytest
import yaml

from domainllm.cli.main import build_parser
from domainllm.k8s.api import SERVING_RULES
from domainllm.k8s.rbac import LAUNCHER_RULES
from domainllm.k8s.validate import DEFAULT_VERSIONS, validate_objects
from domainllm.serve.gateway.server import BACKEND_KEY_ENV
from tests.conftest import REPO

CHART = REPO / "helm" / "domainllm"
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
SIMPLE = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
REQUIRED = {"airflow": {"authManager": FAB}}  # the one value without a default


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


VALUE_SETS = {name: merged(REQUIRED, values) for name, values in {
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
    "serving-retrieval": {
        "serving": {"enabled": True, "gateway": {"retrieval": True, "routesConfigMap": "perl-routes"}},
        "networkPolicies": {"clientPeers": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]},
    },
    "no-network-policies": {"networkPolicies": {"enabled": False}, "serving": {"enabled": True}},
    "development": {"airflow": {"authManager": "", "allowDevelopmentAuthManager": True}, "mlflow": {"auth": {"enabled": False}},
                    "networkPolicies": {"egress": {"enabled": False}}, "serving": {"enabled": True}},
}.items()}  # fmt: skip


def render(values: dict) -> list[dict]:
    """Every object `helm template` (and so `helm install`) renders with these values."""
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name="rel", namespace="ml")
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith(".yaml") and "/tests/" not in path:
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def index(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"].removeprefix("rel-domainllm-")): d for d in docs}


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_ref(container: dict, name: str) -> dict:
    return env_of(container)[name]["valueFrom"]["secretKeyRef"]


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
    docs = render(VALUE_SETS["serving-retrieval"])
    (role,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-launcher")]
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {(g, r, v) for (g, r), verbs in LAUNCHER_RULES.items() for v in verbs}
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-launcher")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "domainllm-airflow", "namespace": "ml"}]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_unknown_values_are_refused() -> None:
    with pytest.raises(helm.HelmValuesError, match="additional properties 'tga' not allowed"):
        render(merged(REQUIRED, {"images": {"tga": "0.2.0"}}))
    with pytest.raises(helm.HelmValuesError):
        render(merged(REQUIRED, {"airflow": {"scheduler": {"resources": {"cpu": "lots", "memory": "1Gi"}}}}))
    with pytest.raises(helm.HelmValuesError, match="additional properties 'egres' not allowed"):
        render(merged(REQUIRED, {"networkPolicies": {"egres": {"enabled": False}}}))


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
    specs = index(docs)["ConfigMap", "domainllm-specs"]
    assert set(specs["data"]) == {"spec.yaml", "spec.k8s.yaml"} and "extends: spec.yaml" in specs["data"]["spec.k8s.yaml"]


def test_the_chart_owns_the_gateway_and_the_rollout_owns_what_it_serves() -> None:
    """No vLLM Deployment and no routes ConfigMap in the chart: the rollout stage makes them, so
    a `helm upgrade` never undoes a rollout. The gateway mounts the rollout's ConfigMap
    (optional: it answers 503 until a first version is served); the rollout stage's account
    is the one with a token, its Role exactly the rollout's calls, the routes ConfigMap the only
    one it may read or write."""
    docs = render(VALUE_SETS["serving-retrieval"])
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert not [d for d in docs if d["kind"] == "ConfigMap" and "routes" in d["metadata"]["name"]]
    assert [n for k, n in by_name if k == "Deployment" and "vllm" in n] == []
    gateway = by_name["Deployment", "rel-domainllm-gateway"]["spec"]["template"]["spec"]
    routes = next(v for v in gateway["volumes"] if v["name"] == "routes")
    assert routes["configMap"] == {"name": "perl-routes", "optional": True}
    assert {name for kind, name in by_name if kind == "PodDisruptionBudget"} == {"rel-domainllm-airflow-api", "rel-domainllm-gateway"}
    default_name = render(merged(REQUIRED, {"serving": {"enabled": True}}))
    gw = next(d for d in default_name if d["kind"] == "Deployment" and d["metadata"]["name"] == "rel-domainllm-gateway")["spec"]["template"]["spec"]
    assert next(v for v in gw["volumes"] if v["name"] == "routes")["configMap"]["name"] == "rel-domainllm-routes"
    account = by_name["ServiceAccount", "domainllm-rollout"]
    assert account["automountServiceAccountToken"] is True
    tokens = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount" and d.get("automountServiceAccountToken")}
    assert tokens == {"domainllm-airflow", "domainllm-rollout"}
    role = by_name["Role", "rel-domainllm-rollout"]
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {(g, r, v) for (g, r), verbs in SERVING_RULES.items() for v in verbs}
    named = [rule for rule in role["rules"] if "resourceNames" in rule]
    assert named == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["perl-routes"], "verbs": ["get", "update"]}]
    assert by_name["RoleBinding", "rel-domainllm-rollout"]["subjects"] == [{"kind": "ServiceAccount", "name": "domainllm-rollout",
                                                                           "namespace": "ml"}]  # fmt: skip
    assert ("Role", "rel-domainllm-rollout") not in {(d["kind"], d["metadata"]["name"]) for d in render(VALUE_SETS["defaults"])}


def test_no_install_without_a_production_airflow_auth_manager() -> None:
    for values in ({}, {"airflow": {"authManager": SIMPLE}}):  # Airflow's default, named or not
        with pytest.raises(helm.HelmRenderError, match=r"airflow\.authManager: set a production auth manager, e\.g\. "
                                                        r"--set airflow\.authManager=airflow\.providers\.fab\..*FabAuthManager.*"
                                                        r"set airflow\.allowDevelopmentAuthManager=true"):  # fmt: skip
            render(values)
    with pytest.raises(helm.HelmValuesError):
        render({"airflow": {"authManager": "FAB please"}})
    with pytest.raises(helm.HelmRenderError, match="airflow.extraEnv.AIRFLOW__CORE__AUTH_MANAGER: set airflow.authManager instead"):
        render({"airflow": {"allowDevelopmentAuthManager": True, "extraEnv": {"AIRFLOW__CORE__AUTH_MANAGER": SIMPLE}}})
    for values, manager in ((REQUIRED, FAB), ({"airflow": {"authManager": "corp.sso.SsoAuthManager"}}, "corp.sso.SsoAuthManager"),
                            ({"airflow": {"allowDevelopmentAuthManager": True}}, SIMPLE)):  # fmt: skip
        docs = render(values)
        airflow = [d for d in docs if d["kind"] in ("Deployment", "Job") and d["metadata"]["name"].startswith("rel-domainllm-airflow-")]
        assert len(airflow) == 5  # api, scheduler, dag-processor, triggerer, and the migrate hook (FAB's tables migrate with it)
        for doc in airflow:
            assert env_of(pod_spec(doc)["containers"][0])["AIRFLOW__CORE__AUTH_MANAGER"]["value"] == manager
    api = index(render(REQUIRED))["Deployment", "airflow-api"]
    assert secret_ref(pod_spec(api)["containers"][0], "AIRFLOW__API__SECRET_KEY") == {"name": "domainllm-airflow-keys",
                                                                                      "key": "api-secret-key"}  # one key for every replica


def test_the_gateway_requires_keys_and_a_signing_secret_and_serves_admin_apart() -> None:
    objs = index(render(merged(REQUIRED, {"serving": {"enabled": True}})))
    pod = pod_spec(objs["Deployment", "gateway"])
    (gateway,) = pod["containers"]
    args = build_parser().parse_args([*gateway["command"][1:], *gateway["args"]])  # the gateway's own CLI takes them
    assert (str(args.keys), str(args.signing_secret)) == ("/etc/domainllm/auth/keys.json", "/etc/domainllm/auth/signing.secret")
    assert (args.host, args.port, args.admin_host, args.admin_port) == ("0.0.0.0", 8800, "0.0.0.0", 8801) and args.scrub_pii
    assert {p["name"]: p["containerPort"] for p in gateway["ports"]} == {"http": 8800, "admin": 8801}
    assert gateway["readinessProbe"]["httpGet"] == gateway["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert [(p["name"], p["port"]) for p in objs["Service", "gateway"]["spec"]["ports"]] == [("http", 8800), ("admin", 8801)]
    auth = next(v for v in pod["volumes"] if v["name"] == "auth")["secret"]
    assert auth["secretName"] == "domainllm-gateway-auth" and {i["key"] for i in auth["items"]} == {"keys.json", "signing.secret"}
    mounts = {m["mountPath"]: m for m in gateway["volumeMounts"]}
    assert mounts["/etc/domainllm/auth"]["readOnly"] and mounts["/etc/domainllm/routes"]["readOnly"]
    assert secret_ref(gateway, BACKEND_KEY_ENV) == {"name": "domainllm-vllm-api-key", "key": "api-key"}


def test_the_gateway_mounts_only_its_log_folder_of_the_home_volume() -> None:
    def home_mounts(values: dict) -> list[dict]:
        (gateway,) = pod_spec(index(render(merged(REQUIRED, values)))["Deployment", "gateway"])["containers"]
        return [m for m in gateway["volumeMounts"] if m["name"] == "home"]

    assert home_mounts({"serving": {"enabled": True}}) == [
        {"name": "home", "mountPath": "/var/lib/domainllm/artifacts/serving-logs", "subPath": "artifacts/serving-logs"}]
    assert home_mounts({"home": {"mountPath": "/data/dl/"}, "serving": {"enabled": True, "gateway": {"logRoot": "/data/dl/logs/gw/"}}}) == [
        {"name": "home", "mountPath": "/data/dl/logs/gw/", "subPath": "logs/gw"}]
    # retrieval reads the knowledge store, the embedding model and the classifier: the rest read-only
    assert home_mounts(VALUE_SETS["serving-retrieval"]) == [
        {"name": "home", "mountPath": "/var/lib/domainllm", "readOnly": True},
        {"name": "home", "mountPath": "/var/lib/domainllm/artifacts/serving-logs", "subPath": "artifacts/serving-logs"}]
    for outside in ("/srv/serving-logs", "/var/lib/domainllm", "/var/lib/domainllm-other/logs"):
        with pytest.raises(helm.HelmRenderError, match=f"serving.gateway.logRoot \\({outside}\\) must be a folder under home.mountPath"):
            render(merged(REQUIRED, {"serving": {"enabled": True, "gateway": {"logRoot": outside}}}))


def test_vllm_answers_only_with_the_gateway_key(home: Path) -> None:
    from domainllm.serve.k8s.objects import vllm_deployment
    from domainllm.spec import load_spec

    objs = index(render(VALUE_SETS["serving-retrieval"]))
    (gateway,) = pod_spec(objs["Deployment", "gateway"])["containers"]
    spec = load_spec(REPO / "examples" / "demo" / "spec.k8s.yaml")  # what the rollout deploys for a version
    (vllm,) = vllm_deployment(spec, "domainllm-vllm-v3", "3", "/var/lib/domainllm/v3", "canary")["spec"]["template"]["spec"]["containers"]
    assert secret_ref(vllm, "VLLM_API_KEY") == secret_ref(gateway, BACKEND_KEY_ENV)  # the same Secret and key
    assert not [a for a in vllm["args"] if a.startswith("--api-key")]  # not in the process list either
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/health"  # vLLM leaves /health open


def test_every_component_has_its_own_service_account_and_only_airflow_and_the_rollout_a_token() -> None:
    docs = render(merged(VALUE_SETS["serving-retrieval"], {"serviceAccounts": {"mlflowAnnotations": {"iam.gke.io/gcp-service-account": "mlflow@p.iam"}}}))
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    assert {name: a["automountServiceAccountToken"] for name, a in accounts.items()} == {
        "domainllm-airflow": True, "domainllm-stage": False, "domainllm-mlflow": False, "domainllm-gateway": False, "domainllm-serve": False,
        "domainllm-rollout": True}
    assert accounts["domainllm-mlflow"]["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "mlflow@p.iam"}
    used = {d["metadata"]["name"].removeprefix("rel-domainllm-"): pod_spec(d) for d in docs if d["kind"] == "Deployment"}
    assert {name: pod["serviceAccountName"] for name, pod in used.items()} == {
        **{f"airflow-{c}": "domainllm-airflow" for c in ("api", "scheduler", "dag-processor", "triggerer")},
        "mlflow": "domainllm-mlflow", "gateway": "domainllm-gateway"}
    assert [name for name, pod in used.items() if pod["automountServiceAccountToken"]] == ["airflow-scheduler", "airflow-triggerer"]  # tasks launch; the triggerer watches deferred ones
    assert not {"domainllm-gateway", "domainllm-serve", "domainllm-rollout"} & {d["metadata"]["name"] for d in render(VALUE_SETS["defaults"])}
    with pytest.raises(helm.HelmRenderError, match="serviceAccounts: airflow, stage, mlflow, gateway, serve and rollout must be six different names"):
        render(merged(REQUIRED, {"serviceAccounts": {"gateway": "domainllm-stage"}}))


def mlflow_auth_module(name: str) -> ModuleType:
    """One module of MLflow's auth app, loaded alone: the package itself needs Flask-WTF
    (`mlflow[auth]`), which only the image that runs the server has to carry."""
    spec = importlib.util.find_spec("mlflow.server")
    assert spec and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "auth" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"_mlflow_auth_{name}", path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_mlflow_requires_sign_in_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read_auth_config = mlflow_auth_module("config").read_auth_config
    get_permission = mlflow_auth_module("permissions").get_permission

    objs = index(render(VALUE_SETS["defaults"]))
    (mlflow,) = pod_spec(objs["Deployment", "mlflow"])["containers"]
    refs = {name: secret_ref(mlflow, name) for name in ("MLFLOW_AUTH_DATABASE_URI", "MLFLOW_AUTH_ADMIN_USERNAME",
                                                        "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")}  # fmt: skip
    keys = ("database-uri", "admin-username", "admin-password", "flask-secret-key")
    assert refs == {name: {"name": "domainllm-mlflow-auth", "key": key} for name, key in zip(refs, keys, strict=True)}
    # The container's command as written, with a stand-in `mlflow` that reports its arguments:
    # the auth file it leaves is what MLflow's own reader sees.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "mlflow").write_text('#!/bin/sh\necho "$@"\n')
    (tmp_path / "bin" / "mlflow").chmod(0o755)
    (tmp_path / "basic_auth.ini").write_text(objs["ConfigMap", "mlflow-auth"]["data"]["basic_auth.ini"])
    script = mlflow["command"][2].replace("/etc/domainllm/mlflow-auth/", f"{tmp_path}/")
    uri = "postgresql://mlflow:p%40ss%25@db.example:5432/mlflow_auth"  # an escaped password: `%` is special to configparser
    written = tmp_path / "auth.ini"
    done = subprocess.run([*mlflow["command"][:2], script, *mlflow["command"][3:], *mlflow["args"]], capture_output=True, text=True,
                          env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "MLFLOW_AUTH_DATABASE_URI": uri,
                               "MLFLOW_AUTH_CONFIG_PATH": str(written)}, check=True, timeout=30)  # fmt: skip
    assert done.stdout.split()[:4] == ["server", "--app-name", "basic-auth", "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)"]
    assert env_of(mlflow)["MLFLOW_AUTH_CONFIG_PATH"]["value"].startswith("/tmp/") and written.stat().st_mode & 0o077 == 0
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(written))
    config = read_auth_config()
    assert (config.database_uri, config.default_permission) == (uri, "NO_PERMISSIONS")
    schema = json.loads((CHART / "values.schema.json").read_text())
    for permission in schema["properties"]["mlflow"]["properties"]["auth"]["properties"]["defaultPermission"]["enum"]:
        get_permission(permission)  # every choice is one MLflow knows
    # the clients sign in: Airflow from the client Secret (the stage pods name it in env_from_secrets)
    for name in ("airflow-api", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        (airflow,) = pod_spec(objs["Deployment", name])["containers"]
        for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert secret_ref(airflow, var) == {"name": "domainllm-mlflow", "key": var}


def test_mlflow_without_sign_in_only_when_asked() -> None:
    assert yaml.safe_load((CHART / "values.yaml").read_text())["mlflow"]["auth"]["enabled"] is True
    objs = index(render(VALUE_SETS["development"]))
    (mlflow,) = pod_spec(objs["Deployment", "mlflow"])["containers"]
    assert mlflow["command"] == ["mlflow", "server"] and ("ConfigMap", "mlflow-auth") not in objs
    (scheduler,) = pod_spec(objs["Deployment", "airflow-scheduler"])["containers"]
    assert "MLFLOW_TRACKING_PASSWORD" not in env_of(scheduler) and "MLFLOW_AUTH_ADMIN_PASSWORD" not in env_of(mlflow)


def test_mlflow_auth_file_is_ini_with_the_chosen_default_permission() -> None:
    ini = index(render(merged(REQUIRED, {"mlflow": {"auth": {"defaultPermission": "READ"}}})))["ConfigMap", "mlflow-auth"]
    parser = configparser.ConfigParser()
    parser.read_string(ini["data"]["basic_auth.ini"])
    assert dict(parser["mlflow"]) == {"default_permission": "READ",
                                      "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth"}
