"""Which generation backend an eval uses (`evals.backend`), opened for one model:

- `vllm`: vLLM's engine in this process when vLLM is installed here (the GPU eval image);
  otherwise a vLLM OpenAI server for the model, started from the serving environment
  (`DOMAINLLM_VLLM_PYTHON`) and stopped afterwards;
- `transformers`: `model.generate`, which runs anywhere;
- `auto`: vLLM's engine when installed here, else transformers (a server per model costs
  its start-up, worth it only for large sets: ask for `vllm` then).

Every backend returns `decoding.n` completions per prompt, cut the same way, so results
keep one format; which one ran is recorded with the results."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from domainllm.evals.generate import Generator

log = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    pass


def vllm_in_process() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve(backend: str) -> str:
    """`transformers`, `vllm-engine` or `vllm-server`."""
    from domainllm.serve.vllm_server import PYTHON_ENV, vllm_python

    if backend == "transformers":
        return "transformers"
    if vllm_in_process():
        return "vllm-engine"
    if backend == "auto":
        return "transformers"
    if vllm_python() is None:
        raise BackendUnavailable(f"evals.backend is vllm, but vLLM is not installed here and {PYTHON_ENV} names no serving "
                           f"environment: run `make serve-env` (or use backend auto/transformers)")  # fmt: skip
    return "vllm-server"


@contextmanager
def open_generator(backend: str, model_path: str) -> Iterator[Generator]:
    kind = resolve(backend)
    log.info("generation backend: %s (evals.backend: %s)", kind, backend)
    if kind == "transformers":
        from domainllm.evals.generate import TransformersGenerator

        yield TransformersGenerator(model_path)
    elif kind == "vllm-engine":
        from domainllm.evals.vllm_engine import VllmEngineGenerator

        yield VllmEngineGenerator(model_path)
    else:
        from domainllm.evals.endpoint import EndpointGenerator, make_client
        from domainllm.serve.vllm_server import VllmServer

        with VllmServer(model_path, served_name="eval") as server:
            yield ServedGenerator(EndpointGenerator(make_client(server.base_url), "eval"), server)


class ServedGenerator:
    """Generation through a vLLM server this eval started: when a request fails, the error
    says what happened to the server (a native crash and its frame, an exception in its
    kernels, an outside kill) rather than what the HTTP client saw."""

    name = "vllm-server"

    def __init__(self, generate: Generator, server) -> None:
        self.generate, self.server = generate, server

    def __call__(self, prompts, decoding) -> list[list[str]]:
        from domainllm.evals.endpoint import EndpointError

        try:
            return self.generate(prompts, decoding)
        except EndpointError as exc:
            reason, _ = self.server.explain(str(exc))
            raise EndpointError(f"{reason}; the server's log: {self.server.log_path} "
                                f"(evals.backend transformers evaluates without vLLM)") from None  # fmt: skip
