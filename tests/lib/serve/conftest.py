"""Fixtures of the serving tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from domainllm.serve.vllm_server import PYTHON_ENV

STAND_IN = Path(__file__).with_name("dying_server.py")


@pytest.fixture
def dying_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The serving environment's Python is the stand-in; returns a model folder for it."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"hidden_size": 64}')
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nshift\nexec {sys.executable} {STAND_IN} \"$@\"\n")  # drops the launcher's path
    python.chmod(0o755)
    monkeypatch.setenv(PYTHON_ENV, str(python))
    monkeypatch.setattr("domainllm.evals.backends.vllm_in_process", lambda: False)
    return tmp_path / "model"
