"""The registry's model store: a promoted model is copied once to a folder named by its
fingerprint, so rerunning a run id (which replaces its stage folders) leaves the champion's
files alone; a copy cut short is redone, never taken for a finished one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainllm.evals.registry import COMPLETE, RegisteredModel, is_champion, store_model
from domainllm.spec import load_spec
from tests.conftest import tiny_spec_doc, write_spec


def test_store_model_copies_once_and_survives_reruns(home: Path, corpora: Path, tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora)))
    model = tmp_path / "run" / "dpo" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights-1")
    (model / "adapter").mkdir()
    (model / "adapter" / "config.json").write_text("{}")
    stored = Path(store_model(spec, str(model), "ab" * 32))
    assert stored == Path(spec.artifact_root) / "registry" / "tiny" / ("ab" * 8)
    assert (stored / "model.safetensors").read_bytes() == b"weights-1" and (stored / "adapter" / "config.json").exists()
    assert (stored / COMPLETE).exists()

    (model / "model.safetensors").write_bytes(b"weights-2")  # the run id is rerun with another config
    assert Path(store_model(spec, str(model), "ab" * 32)) == stored and (stored / "model.safetensors").read_bytes() == b"weights-1"

    cut = Path(spec.artifact_root) / "registry" / "tiny" / ("cd" * 8)
    cut.mkdir()
    (cut / "model.safetensors").write_bytes(b"half")  # a copy killed before `_COMPLETE`
    again = Path(store_model(spec, str(model), "cd" * 32))
    assert again == cut and (cut / "model.safetensors").read_bytes() == b"weights-2" and (cut / COMPLETE).exists()


def test_the_same_fingerprint_is_the_same_model() -> None:
    current = RegisteredModel("3", "/store/abc", "f" * 64)
    assert is_champion(current, "f" * 64, "/runs/x/dpo/model") and not is_champion(current, "e" * 64, "/store/abc")
    assert is_champion(RegisteredModel("1", "/runs/x/dpo/model"), "e" * 64, "/runs/x/dpo/model")  # registered before fingerprints
    assert not is_champion(None, "f" * 64, "/x")


def test_a_lora_trained_model_keeps_its_adapter_s_base(home: Path, corpora: Path, tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora)))
    base = tmp_path / "run" / "sft" / "model"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    model = tmp_path / "run" / "dpo" / "model"
    (model / "adapter").mkdir(parents=True)
    (model / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    stored = Path(store_model(spec, str(model), "ef" * 32))
    assert (stored / "base" / "config.json").exists() and (stored / "adapter" / "adapter_config.json").exists()


def test_no_alias_is_not_an_unreachable_registry(home: Path, corpora: Path, tmp_path: Path, monkeypatch) -> None:
    """No model or no alias yet: None (the first gate has no champion). MLflow that cannot be
    asked: an error, never "no champion" (a gate would then promote anything)."""
    import mlflow

    from domainllm.evals.registry import CHAMPION, RegistryUnavailable, by_alias, champion
    from domainllm.serve.vllm_server import free_port
    from domainllm.tracking import tracking_uri

    spec = load_spec(write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora)))
    assert champion(spec) is None  # no registered model at all
    mlflow.set_tracking_uri(tracking_uri(spec))
    mlflow.MlflowClient().create_registered_model(spec.name)
    assert by_alias(spec, CHAMPION) is None  # the model, but no alias yet
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    doc = tiny_spec_doc(corpora)
    doc["tracking"] = {"uri": f"http://admin:s3cret@127.0.0.1:{free_port()}"}  # nothing listens there
    down = load_spec(write_spec(tmp_path / "down.yaml", doc))
    with pytest.raises(RegistryUnavailable, match="could not be read for alias 'champion'") as exc:
        champion(down)
    assert "s3cret" not in str(exc.value) and "127.0.0.1" in str(exc.value)
