"""checkov on everything we send a cluster: the chart for every value set, and every pod and
job a run of the cluster demo spec creates (`domainllm k8s render`, GPU pools + InfiniBand).
No failed check, and every skip carries its reason in what we render (a `checkov.io/skipN`
annotation). checkov runs from its own environment (`make checkov-env`: its pins conflict
with ours). A deliberately careless Deployment in the same run shows the checks do fire."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from domainllm.k8s.render import render_run
from domainllm.serve.k8s.objects import deployment_name, routes_config_map, vllm_deployment, vllm_service
from domainllm.spec import load_spec
from tests.conftest import REPO
from tests.helm.test_chart import VALUE_SETS, render

CHECKOV = Path(os.environ.get("DOMAINLLM_CHECKOV", REPO / ".venv-checkov" / "bin" / "checkov"))
CARELESS = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "careless", "namespace": "ml"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {
                "containers": [{"name": "x", "image": "x:latest", "securityContext": {"privileged": True}}]}}}}  # fmt: skip


@pytest.mark.skipif(not CHECKOV.exists(), reason="no checkov environment: `make checkov-env` (make test builds it)")
def test_checkov_passes_on_what_we_send_with_justified_skips(home: Path, tmp_path: Path) -> None:
    for name, values in VALUE_SETS.items():
        (tmp_path / f"chart-{name}.yaml").write_text(yaml.safe_dump_all(render(values), sort_keys=False))
    spec = load_spec(REPO / "examples" / "demo" / "spec.k8s.yaml")
    rendered = render_run(spec, "spec.k8s.yaml", "demo")
    rollout_pod = next(f"Pod.domainllm.{i.objects[0]['metadata']['name']}" for i in rendered if i.request.name == "rollout")
    for i, item in enumerate(rendered):
        (tmp_path / f"run-{i:02d}-{item.request.name}.yaml").write_text(yaml.safe_dump_all(item.objects, sort_keys=False))
    name = deployment_name(spec, "7")  # and what the rollout stage makes for a version it serves
    served = vllm_deployment(spec, name, "7", "/var/lib/domainllm/artifacts/registry/v7", "canary")
    served["metadata"]["uid"] = "uid-of-the-deployment"
    rollout = [served, vllm_service(spec, name, served), routes_config_map(spec, {"routes.json": "{}"})]
    (tmp_path / "rollout-objects.yaml").write_text(yaml.safe_dump_all(rollout, sort_keys=False))
    (tmp_path / "careless.yaml").write_text(yaml.safe_dump(CARELESS))
    done = subprocess.run([str(CHECKOV), "-d", str(tmp_path), "--framework", "kubernetes", "--compact", "-o", "json",
                           "--skip-download"], capture_output=True, text=True, timeout=300)  # fmt: skip
    report = json.loads(done.stdout)
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0 and summary["resource_count"] > 150
    failed = [(f["check_id"], f["resource"], f["file_path"]) for f in results["failed_checks"]]
    assert failed and all(path.endswith("/careless.yaml") for _, _, path in failed), failed  # only the careless one
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= {check for check, _, _ in failed}  # privileged, :latest
    skipped = results["skipped_checks"]
    assert skipped and all(s["check_result"].get("suppress_comment", "").strip() for s in skipped)
    chart = {s["check_id"] for s in skipped if "/chart-" in s["file_path"]}
    assert chart == {"CKV_K8S_43", "CKV_K8S_35", "CKV_K8S_38"}
    stage_pods = {s["check_id"] for s in skipped if "/run-" in s["file_path"]}
    assert stage_pods == {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_15", "CKV_K8S_25", "CKV_K8S_35", "CKV_K8S_38", "CKV_K8S_43", "CKV2_K8S_6"}
    assert {(s["check_id"], s["resource"]) for s in skipped if s["check_id"] == "CKV_K8S_38" and "/run-" in s["file_path"]} == {
        ("CKV_K8S_38", rollout_pod)}  # the rollout's pod alone has an API token
    served_skips = {s["check_id"] for s in skipped if "/rollout-objects" in s["file_path"]}
    assert served_skips == {"CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43", "CKV2_K8S_6"}
