"""`runtime.kubernetes`: deferral is on unless turned off; a Kueue gang without a queue is
refused at load with what to set; admission waits have a deadline; what a TrainJob cannot
carry is refused with what to use instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainllm.spec import SpecError, load_spec
from tests.conftest import tiny_spec_doc, write_spec


def _spec(tmp_path: Path, **kubernetes):
    doc = tiny_spec_doc(tmp_path)
    doc["runtime"] = {"launcher": "kubernetes", "kubernetes": kubernetes}
    return load_spec(write_spec(tmp_path / "spec.yaml", doc))


def test_stage_tasks_defer_by_default_and_admission_has_a_deadline(home: Path, tmp_path: Path) -> None:
    k8s = _spec(tmp_path).runtime.kubernetes
    assert k8s.deferrable is True
    assert k8s.training.admission_timeout_s == 6 * 3600
    assert _spec(tmp_path, deferrable=False).runtime.kubernetes.deferrable is False


def test_a_kueue_gang_without_a_queue_is_refused_with_what_to_set(home: Path, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        _spec(tmp_path, training={"gang": "kueue"})
    msg = str(err.value)
    assert "runtime.kubernetes.training" in msg and "gang: kueue needs `queue`" in msg and "LocalQueue" in msg
    queued = _spec(tmp_path, training={"gang": "kueue", "queue": "gpu-training", "admission_timeout_s": 1800})
    assert queued.runtime.kubernetes.training.queue == "gpu-training"
    assert queued.runtime.kubernetes.training.admission_timeout_s == 1800
    assert _spec(tmp_path, training={"gang": "volcano"}).runtime.kubernetes.training.queue is None  # Volcano's default queue


def test_an_admission_deadline_must_be_positive(home: Path, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="admission_timeout_s"):
        _spec(tmp_path, training={"gang": "kueue", "queue": "q", "admission_timeout_s": 0})


def test_what_a_trainjob_cannot_carry_is_refused_with_what_to_use(home: Path, tmp_path: Path) -> None:
    """Kubeflow Trainer's TrainJob has no envFrom for its trainer and brings its own gang
    (the runtime's podGroupPolicy): a spec asking for either is refused at load, not a pod
    without its credentials."""
    with pytest.raises(SpecError) as err:
        _spec(tmp_path, env_from_secrets=["domainllm-mlflow"], training={"backend": "trainjob"})
    assert "env_from_secrets ['domainllm-mlflow'] cannot reach a TrainJob's trainer" in str(err.value)
    assert "secret_env" in str(err.value) and "backend jobset" in str(err.value)
    with pytest.raises(SpecError, match="backend: trainjob cannot take gang: volcano"):
        _spec(tmp_path, training={"backend": "trainjob", "gang": "volcano"})
    ok = _spec(tmp_path, secret_env={"MLFLOW_TRACKING_PASSWORD": {"secret": "domainllm-mlflow", "key": "password"}},
               training={"backend": "trainjob", "gang": "kueue", "queue": "q"})  # fmt: skip
    assert ok.runtime.kubernetes.training.backend == "trainjob"
    assert _spec(tmp_path, env_from_secrets=["s"], training={"backend": "jobset", "gang": "volcano"}).runtime.kubernetes.env_from_secrets == ("s",)
