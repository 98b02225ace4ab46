"""The same domain_llm DAG on the Kubernetes launcher, only the spec changed: real Airflow
(`airflow dags test`) resolves the spec's Airflow connection, the real provider hook talks
HTTP to the fake API server, and that server's kubelet really runs each pod's command here
(tests/operators/launchers/fake_k8s.py: no cluster runs on this machine). The stage's own
log reaches the task log; pod name and MLflow run id are in XCom; the pod carries the run's
lineage; finished pods are cleaned up."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from tests.conftest import tiny_spec_doc, write_spec
from tests.e2e.conftest import airflow
from tests.operators.launchers.fake_k8s import FakeApiServer, FakeCluster, local_kubelet

pytestmark = pytest.mark.slow


def test_a_stage_runs_as_a_pod_through_the_unchanged_dag(airflow_db, home: Path, corpora: Path, tmp_path: Path) -> None:
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    doc = tiny_spec_doc(corpora)
    doc["runtime"] = {
        "launcher": "kubernetes",
        "images": {name: {"ref": f"registry.example.com/domainllm/{name}:test"} for name in ("worker", "trainer", "serve")},
        "kubernetes": {"connection": "fake_k8s", "poll_interval_s": 0.2, "spec_mount_path": str(spec_dir),
                       "home": {"claim": "home", "mount_path": str(home)},
                       "cache": {"mount_path": str(tmp_path / "cache")}},
    }  # fmt: skip
    spec_path = write_spec(spec_dir / "spec.yaml", doc)
    spec = load_spec(spec_path)
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TORCH_EXTENSIONS_DIR")}
    base_env.update({k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "MLFLOW_", "DO_NOT"))})
    cluster = FakeCluster(local_kubelet(sys.executable, base_env))
    with FakeApiServer(cluster) as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))
        env = {**os.environ, "AIRFLOW_CONN_FAKE_K8S": json.dumps({"conn_type": "kubernetes",
                                                                   "extra": {"kube_config_path": str(kubeconfig)}})}  # fmt: skip
        conf = json.dumps({"spec": str(spec_path), "run_id": "k8s", "stages": ["ingest"]})
        proc = airflow("dags", "test", "domain_llm", "-c", conf, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]

    pods = [name for kind, name in cluster.created if kind == "pod"]
    assert len(pods) == 3 and [p.split("-")[1:3] for p in pods] == [["run", "start"], ["ingest", "k8s"], ["run", "finish"]]
    assert not cluster.pods  # delete_succeeded: nothing left behind
    layout = RunLayout(spec.artifact_root, "k8s")
    manifest = layout.read_manifest("ingest")
    assert manifest is not None and manifest.counts["records_out"] > 0
    assert "stage ingest: done in" in out  # the pod's own log, streamed into the task log
    assert f"created pod {pods[1]} in namespace domainllm" in out

    with sqlite3.connect(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db") as db:
        rows = dict(db.execute("select key, value from xcom where task_id = 'ingest' and key in ('launch', 'handle') "
                               "order by dag_run_id desc").fetchall()[::-1])  # fmt: skip
    launch, handle = json.loads(rows["launch"]), json.loads(rows["handle"])
    assert launch["launcher"] == "kubernetes" and launch["mlflow_run_id"] == layout.mlflow_run_id() is not None
    assert handle == {"launcher": "kubernetes", "kind": "pod", "name": pods[1], "namespace": "domainllm", "reattached": False,
                      "attempt_id": launch["attempt_id"]}  # fmt: skip
    assert manifest.attempt_id == launch["attempt_id"]
