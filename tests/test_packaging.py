"""The layout rules: every package folder is packaged; lib/ never imports Airflow."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

from tests.conftest import REPO


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for root, name in ((REPO / "lib" / "domainllm", "domainllm"), (REPO / "operators", "domainllm_operators")):
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            found.add(".".join((name, *rel)))
    assert found == listed


def test_lib_never_imports_airflow() -> None:
    offenders = []
    for path in (REPO / "lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "airflow" or n.startswith("airflow.") for n in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_importing_the_stage_runner_loads_neither_airflow_nor_torch() -> None:
    code = (
        "import sys, domainllm.cli.main, domainllm.stages.runner, domainllm.spec;"
        "print(sorted(m for m in ('airflow', 'torch', 'transformers', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
