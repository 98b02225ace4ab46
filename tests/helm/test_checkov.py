"""checkov on everything the chart renders, for every value set: no failed check, and every
skip carries its reason in the chart (a `checkov.io/skipN` annotation). checkov runs from its
own environment (`make checkov-env`: its pins conflict with ours). A deliberately careless
Deployment in the same run shows the checks do fire."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.helm.test_chart import VALUE_SETS, render

CHECKOV = Path(os.environ.get("DOMAINLLM_CHECKOV", REPO / ".venv-checkov" / "bin" / "checkov"))
CARELESS = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "careless", "namespace": "ml"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {
                "containers": [{"name": "x", "image": "x:latest", "securityContext": {"privileged": True}}]}}}}  # fmt: skip


@pytest.mark.skipif(not CHECKOV.exists(), reason="no checkov environment: `make checkov-env` (make test builds it)")
def test_checkov_passes_on_every_value_set_with_justified_skips(tmp_path: Path) -> None:
    for name, values in VALUE_SETS.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(render(values), sort_keys=False))
    (tmp_path / "careless.yaml").write_text(yaml.safe_dump(CARELESS))
    done = subprocess.run([str(CHECKOV), "-d", str(tmp_path), "--framework", "kubernetes", "--compact", "-o", "json",
                           "--skip-download"], capture_output=True, text=True, timeout=300)  # fmt: skip
    report = json.loads(done.stdout)
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0 and summary["resource_count"] > 100
    failed = [(f["check_id"], f["resource"], f["file_path"]) for f in results["failed_checks"]]
    assert failed and all(path.endswith("/careless.yaml") for _, _, path in failed), failed  # only the careless one
    assert {"CKV_K8S_16", "CKV_K8S_14"} <= {check for check, _, _ in failed}  # privileged, :latest
    skipped = results["skipped_checks"]
    assert skipped and all(s["check_result"].get("suppress_comment", "").strip() for s in skipped)
    assert {s["check_id"] for s in skipped} == {"CKV_K8S_43", "CKV_K8S_35", "CKV_K8S_38"}
