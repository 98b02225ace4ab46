"""Fixtures of the operators' tests: a fake Kubernetes cluster that the launcher, the trigger
and the operators reach through a real Airflow connection, as they do a real cluster."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.operators.launchers.fake_k8s import FakeApiServer, FakeCluster, Kubelet

CONNECTION = "fake_k8s"
"""The Airflow connection id (`runtime.kubernetes.connection`) of `fake_cluster`'s API server."""


@pytest.fixture
def fake_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Kubelet], FakeCluster]]:
    """fake_cluster(kubelet) -> a FakeCluster behind its API server, the connection `fake_k8s`
    pointing at it (AIRFLOW_CONN_FAKE_K8S: a kubeconfig file); stopped at the end of the test."""
    servers: list[FakeApiServer] = []

    def make(kubelet: Kubelet) -> FakeCluster:
        cluster = FakeCluster(kubelet)
        server = FakeApiServer(cluster).__enter__()
        servers.append(server)
        kubeconfig = tmp_path / f"kubeconfig-{len(servers)}"
        kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION.upper()}",
                           json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}))  # fmt: skip
        return cluster

    yield make
    for server in servers:
        server.__exit__(None, None, None)
