"""A rejected rollout approval undoes the gate's promotion in the real MLflow registry:
`champion` goes back to the version that serves (or away, when nothing serves yet), and the
rejected version is tagged, so the next round is compared with what users actually get."""

from __future__ import annotations

from pathlib import Path

import mlflow

from domainllm.evals.registry import CHAMPION, PRODUCTION, by_alias
from domainllm.flywheel.approval import TAG_APPROVAL, reject
from domainllm.spec import load_spec
from domainllm.tracking import tracking_uri
from tests.conftest import tiny_spec_doc, write_spec


def test_a_rejection_puts_champion_back_on_what_serves(home: Path, corpora: Path, tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora)))
    mlflow.set_tracking_uri(tracking_uri(spec))
    client = mlflow.MlflowClient()
    client.create_registered_model(spec.name)
    for _ in range(2):
        client.create_model_version(spec.name, source=str(tmp_path))
    client.set_registered_model_alias(spec.name, CHAMPION, "2")  # the gate promoted version 2
    assert reject(spec, "2") is None and by_alias(spec, CHAMPION) is None  # nothing served yet: no champion
    client.set_registered_model_alias(spec.name, PRODUCTION, "1")
    client.set_registered_model_alias(spec.name, CHAMPION, "2")
    assert reject(spec, "2") == "1" and by_alias(spec, CHAMPION).version == "1"
    assert client.get_model_version(spec.name, "2").tags[TAG_APPROVAL] == "rejected"
