"""Runs the export worker in the quantization environment from a stage: a child process of
`DOMAINLLM_QUANT_PYTHON` (`make quant-env` makes `.venv-quant`), its log lines passed on to
the stage's log as they come, its `results.json` read back. A worker that dies (a native
crash in a quantization kernel, an out-of-memory kill) takes only the variant it was
exporting with it: that variant is recorded as failed with the evidence (exit status, the
crash and its frame, the log's last lines) and a new worker exports the rest."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import domainllm
from domainllm.capabilities.crash import crash_in_log, describe_exit
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
    """Exports every variant of `job`; returns {environment, variants} in the job's order."""
    python = quant_python()
    done: dict[str, dict[str, Any]] = {}
    environment: dict[str, Any] = {}
    remaining = list(job["variants"])
    while remaining:
        code, output = _run_once(python, {**job, "variants": remaining}, job_path)
        results = _read_results(job["out"])
        environment = results.get("environment") or environment
        done.update({r["name"]: r for r in results.get("variants", [])})
        remaining = [v for v in remaining if v["name"] not in done]
        if not remaining:
            break
        crash = crash_in_log(output)
        died = describe_exit(code) + (f"; {crash.summary()}" if crash else "")
        name = results.get("running")
        if name is None:  # before its first variant: the environment itself is broken
            raise RuntimeError(f"the quantization worker {died} before exporting anything:\n{_tail(output)}")
        variant = next(v for v in remaining if v["name"] == name)
        log.warning("quantize: the worker %s while exporting %s; going on with the other variants", died, name)
        shutil.rmtree(os.path.join(job["out"], name), ignore_errors=True)  # what it had written is not a variant
        done[name] = {"name": name, "format": variant["format"], "path": name, "status": "failed",
                      "reason": f"the export worker {died}",
                      "evidence": {"exit_code": code, "crash": crash.to_dict() if crash else None, "log_tail": _tail(output)}}  # fmt: skip
        remaining = [v for v in remaining if v["name"] != name]
    return {"environment": environment, "variants": [done[v["name"]] for v in job["variants"]]}


def _run_once(python: str, job: dict[str, Any], job_path: str) -> tuple[int, str]:
    """One worker on `job`: its exit code and its last lines of output."""
    with open(job_path, "w") as fh:
        json.dump(job, fh)
    results = os.path.join(job["out"], RESULTS)
    if os.path.exists(results):
        os.remove(results)
    lib = str(Path(domainllm.__file__).resolve().parent.parent)  # the worker imports only domainllm.quant from it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (lib, os.environ.get("PYTHONPATH")) if p),
           "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}  # fmt: skip
    tail: list[str] = []
    with subprocess.Popen([python, "-m", "domainllm.quant.worker", job_path], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line and "\r" not in line:  # progress bars redraw with \r: keep the log readable
                log.info("quantize: %s", line)
            tail = [*tail[-199:], line]
    return proc.returncode, "\n".join(tail)


def _read_results(out: str) -> dict[str, Any]:
    try:
        with open(os.path.join(out, RESULTS)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _tail(output: str, lines: int = 20) -> str:
    return "\n".join(output.splitlines()[-lines:])
