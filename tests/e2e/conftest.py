"""Airflow for the end-to-end tests: its CLI in a subprocess, on the test session's database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def airflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=env or os.environ.copy(), timeout=900
    )


@pytest.fixture(scope="session")
def airflow_db() -> None:
    proc = airflow("db", "migrate")
    assert proc.returncode == 0, proc.stderr[-3000:]
