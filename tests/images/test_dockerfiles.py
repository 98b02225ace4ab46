"""The four images: hadolint-clean at its strictest threshold (every ignore justified on the
line above it), one per role the stages run in, non-root with a numeric user (Kubernetes'
runAsNonRoot checks it), installing from the project's locks, no secrets baked in. They are
built where Docker runs (`make images`); none runs here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from domainllm.stages.names import STAGE_IMAGES
from tests.conftest import REPO

IMAGES = REPO / "images"
ROLES = ("airflow", "worker", "trainer", "serve")
HADOLINT = Path(sys.executable).parent / "hadolint"


def _dockerfile(role: str) -> str:
    return (IMAGES / role / "Dockerfile").read_text()


def test_every_role_has_an_image() -> None:
    assert set(STAGE_IMAGES.values()) | {"airflow"} == set(ROLES)
    assert all((IMAGES / role / "Dockerfile").is_file() for role in ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_hadolint_passes(role: str) -> None:
    done = subprocess.run([str(HADOLINT), "--failure-threshold", "info", "--no-color", str(IMAGES / role / "Dockerfile")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_a_careless_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    done = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3007" in done.stdout and "DL3009" in done.stdout


@pytest.mark.parametrize("role", ROLES)
def test_each_ignore_says_why(role: str) -> None:
    lines = _dockerfile(role).splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip()
            for rule in line.split("ignore=")[1].split(","):
                assert above.startswith(f"# {rule.strip()}") and len(above) > 40, f"{role}:{i + 1}: say why {rule} is ignored"


@pytest.mark.parametrize("role", ROLES)
def test_non_root_from_the_locks_and_no_secrets(role: str) -> None:
    text = _dockerfile(role)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and re.fullmatch(r"[1-9]\d*:\d+", users[-1]), f"{role}: the last USER must be a numeric non-root uid"
    installs = [line for line in text.splitlines() if "pip install" in line and "uv pip install --no-build-isolation" not in line]
    assert installs and all("--constraint" in line for line in installs), f"{role}: install from the locks"
    assert not re.search(r"^(ENV|ARG)\s.*(PASSWORD|SECRET|TOKEN|API_KEY)\w*\s*=", text, re.M | re.I)
