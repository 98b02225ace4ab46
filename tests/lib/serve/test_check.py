"""The serve check on real vLLM (CPU build): a model it serves is `ok` and cached for this
machine; an engine that dies under the first request, by a native crash (SIGILL, as an
unsupported instruction kills it) or by an outside kill (SIGKILL, the out-of-memory killer),
is `failed` with the evidence, and only the crash is cached: it says something about the
machine, the kill does not (that one on the stand-in of test_child_deaths.py: real vLLM
gains nothing there and costs a 40 s start)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from domainllm.capabilities import Probes
from domainllm.serve.check import PROBE, model_signature, serve_check
from domainllm.spec.serving import ServingConfig
from tests.lib.evals.vllm_helpers import kill_engine_once_ready, needs_vllm, tiny_chat_model

CFG = ServingConfig(max_model_len=512)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return tiny_chat_model(tmp_path_factory.mktemp("check") / "m")


def test_the_signature_is_the_config_less_names_and_versions(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"_name_or_path": "/x", "transformers_version": "5", "hidden_size": 64}')
    assert model_signature(str(tmp_path)) == {"hidden_size": 64}
    assert model_signature(str(tmp_path / "missing")) == {"config": None}


def test_without_a_serving_environment_the_check_is_skipped(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOMAINLLM_VLLM_PYTHON", raising=False)
    assert serve_check("/nowhere", CFG) == {"status": "skipped", "cached": False,
                                            "reason": "no vLLM environment here (`make serve-env`, DOMAINLLM_VLLM_PYTHON)"}


@pytest.mark.slow
@needs_vllm
def test_a_served_model_is_ok_and_cached(home: Path, model: str) -> None:
    first = serve_check(model, CFG)
    assert first["status"] == "ok" and not first["cached"] and first["evidence"]["tokens"] > 0, first
    t0 = time.monotonic()
    again = serve_check(model, CFG)
    assert again["cached"] and again["status"] == "ok" and time.monotonic() - t0 < 5
    assert [r["probe"] for r in Probes().all()] == [PROBE]


@pytest.mark.slow
@needs_vllm
def test_a_native_crash_is_recorded_with_its_evidence_and_cached(home: Path, model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    killed = kill_engine_once_ready(monkeypatch, signal.SIGILL)
    record = serve_check(model, CFG)
    assert killed and record["status"] == "failed" and not record["cached"], record
    assert "SIGILL" in record["reason"] and "illegal instruction" in record["reason"]
    assert record["evidence"]["crash"]["signal"] == "SIGILL" and record["evidence"]["crash"]["frames"]
    assert "Fatal Python error: Illegal instruction" in record["evidence"]["log_tail"] or record["evidence"]["crash"]
    assert record["machine"]["cpu"] and record["probed_at"]
    assert serve_check(model, CFG)["cached"]  # the same machine, vLLM and model: not tried again


def test_an_outside_kill_is_recorded_but_not_cached(home: Path, dying_vllm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYING_SIGNAL", "SIGKILL")  # the out-of-memory killer's: no crash report
    record = serve_check(str(dying_vllm), CFG.model_copy(update={"start_timeout_s": 60}))
    assert record["status"] == "failed" and record["evidence"]["crash"] is None, record
    assert "killed by SIGKILL" in record["reason"] and record["evidence"]["exit_code"] == -signal.SIGKILL
    assert Probes().all() == []  # a retry may well succeed
