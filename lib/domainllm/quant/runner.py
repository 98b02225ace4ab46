"""Runs the export worker in the quantization environment from a stage: a child process of
`DOMAINLLM_QUANT_PYTHON` (`make quant-env` makes `.venv-quant`), its log lines passed on to
the stage's log as they come, its `results.json` read back."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import domainllm
from domainllm.quant.worker import RESULTS

log = logging.getLogger(__name__)

PYTHON_ENV = "DOMAINLLM_QUANT_PYTHON"


class QuantEnvMissing(RuntimeError):
    pass


def quant_python() -> str:
    """The quantization environment's Python: `DOMAINLLM_QUANT_PYTHON`, else this one when
    llmcompressor is installed here (an image built for it)."""
    value = os.environ.get(PYTHON_ENV)
    if value and os.access(value, os.X_OK):
        return value
    if importlib.util.find_spec("llmcompressor") is not None:
        return sys.executable
    where = f" ({PYTHON_ENV}={value} is not an executable)" if value else ""
    raise QuantEnvMissing(f"no quantization environment{where}: run `make quant-env` and set {PYTHON_ENV} to "
                          f".venv-quant/bin/python, or turn quantize.enabled off")  # fmt: skip


def run_worker(job: dict[str, Any], job_path: str) -> dict[str, Any]:
    """Runs the worker on `job` and returns its results ({environment, variants})."""
    python = quant_python()
    with open(job_path, "w") as fh:
        json.dump(job, fh)
    lib = str(Path(domainllm.__file__).resolve().parent.parent)  # the worker imports only domainllm.quant from it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (lib, os.environ.get("PYTHONPATH")) if p),
           "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}  # fmt: skip
    tail: list[str] = []
    with subprocess.Popen([python, "-m", "domainllm.quant.worker", job_path], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line and "\r" not in line:  # progress bars redraw with \r: keep the log readable
                log.info("quantize: %s", line)
            tail = [*tail[-19:], line]
    results = os.path.join(job["out"], RESULTS)
    if not os.path.exists(results):
        raise RuntimeError(f"the quantization worker ended ({proc.returncode}) before exporting anything:\n" + "\n".join(tail))
    with open(results) as fh:
        return json.load(fh)
