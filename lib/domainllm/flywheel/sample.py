"""Sample candidate answers per prompt from several model versions (`flywheel.sampling`).

A registry alias whose version is serving is asked through its deployment's OpenAI-compatible
endpoint directly (not through the gateway: these answers are not user traffic): locally the
supervised server, on Kubernetes the version's in-cluster Service (with the key vLLM requires,
which the sample pod gets from its Secret); any other model is opened with the eval backend (`evals.backend`); an `endpoint`
model is any OpenAI-compatible server. The answer the user was served is a candidate too."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from domainllm.spec import Spec
from domainllm.spec.flywheel import ModelRef

log = logging.getLogger(__name__)


class SamplingError(ValueError):
    pass


@dataclass(frozen=True)
class Source:
    label: str
    """What it is, e.g. `alias:production`."""
    version: str | None
    """The registered version, when it is one."""
    model_path: str | None = None
    endpoint: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None

    @property
    def name(self) -> str:
        return f"{self.label}@{self.version}" if self.version else self.label


def resolve(spec: Spec, ref: ModelRef) -> Source | None:
    """Where `ref` is, or None when it does not exist yet (an alias not set, a stage of a
    run that did not train it)."""
    from domainllm.artifacts import RunLayout
    from domainllm.evals.registry import PRODUCTION, by_alias

    if ref.endpoint:
        return Source(ref.label, None, endpoint=ref.endpoint, served_model=ref.model, api_key_env=ref.api_key_env)
    if ref.alias:
        registered = by_alias(spec, ref.alias)
        if registered is None:
            return None
        deployed = _deployed(spec, registered.version)
        if deployed is not None:
            return Source(ref.label, registered.version, registered.model_path, *deployed)
        return Source(ref.label, registered.version, registered.model_path)
    production = by_alias(spec, PRODUCTION)
    if production is None or not production.run_id:
        return None
    manifest = RunLayout(spec.artifact_root, production.run_id).read_manifest(ref.stage)
    if manifest is None or not manifest.info.get("model_path"):
        return None
    return Source(ref.label, f"{production.run_id}/{ref.stage}", manifest.info["model_path"])


def _deployed(spec: Spec, version: str) -> tuple[str, str, str | None] | None:
    """(base URL, served model, env var of its key) of `version`'s deployment when it serves."""
    if spec.runtime.launcher == "kubernetes":
        return _deployed_on_cluster(spec, version)
    from domainllm.serve.local import LocalDeployments

    local = next((d for d in LocalDeployments(spec.name, spec.serving).all().values() if d.version == version), None)
    return (local.base_url, local.served_name, None) if local is not None else None


def _deployed_on_cluster(spec: Spec, version: str) -> tuple[str, str, str | None] | None:
    """The version's Service (named by the rollout after the version), if it answers."""
    import os

    import httpx

    from domainllm.serve.k8s.deployments import BACKEND_KEY_ENV
    from domainllm.serve.k8s.objects import base_url, deployment_name

    url = base_url(spec, deployment_name(spec, version))
    key = os.environ.get(BACKEND_KEY_ENV)
    try:
        reply = httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=10)
    except httpx.HTTPError as exc:
        log.info("version %s: no deployment answers at %s (%s); sampling it with evals.backend", version, url, type(exc).__name__)
        return None
    if reply.status_code != 200:
        log.info("version %s: %s answered HTTP %d; sampling it with evals.backend", version, url, reply.status_code)
        return None
    return url, spec.name, BACKEND_KEY_ENV if key else None


@contextmanager
def open_source(spec: Spec, source: Source) -> Iterator[Any]:
    from domainllm.evals.backends import open_generator
    from domainllm.evals.endpoint import EndpointError, EndpointGenerator, make_client

    if source.endpoint:
        try:
            client = make_client(source.endpoint if source.endpoint.endswith("/v1") else f"{source.endpoint}/v1", source.api_key_env)
        except EndpointError as exc:
            raise SamplingError(f"flywheel.sampling.models {source.label}: {exc}") from None
        model = source.served_model or _first_model(client, source)
        yield EndpointGenerator(client, model)
        return
    from domainllm.stages.models import local_model

    with local_model(source.model_path) as path, open_generator(spec.evals.backend, path) as generator:
        yield generator


def _first_model(client, source: Source) -> str:
    import openai

    try:
        return client.models.list().data[0].id
    except (openai.OpenAIError, IndexError) as exc:
        raise SamplingError(f"flywheel.sampling.models {source.label}: could not list the endpoint's models "
                            f"({type(exc).__name__}); name one with `model`") from None  # fmt: skip


def sample(spec: Spec, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int], list[str]]:
    """Per row, `candidates`: [{model, text, finish_reason, origin}]; also counts and the
    models sampled (by name)."""
    cfg = spec.flywheel.sampling
    decoding = cfg.decoding.model_copy(update={"n": cfg.samples_per_model})
    for row in rows:
        row["candidates"] = []
        if cfg.include_served:
            row["candidates"].append({"model": f"served@{row['version']}", "text": row["answer"],
                                      "finish_reason": row.get("finish_reason"), "origin": "served"})  # fmt: skip
        if row.get("preferred"):
            row["candidates"].append({"model": "user", "text": row["preferred"], "finish_reason": None, "origin": "feedback"})
    counts: dict[str, int] = {}
    used: list[str] = []
    prompts = [row["prompt"] for row in rows]
    for ref in cfg.models:
        source = resolve(spec, ref)
        if source is None:
            log.info("sample: %s is not there (yet); skipped", ref.label)
            counts[f"skipped_models.{ref.label}"] = 1
            continue
        log.info("sample: %d prompts x %d answers from %s", len(rows), cfg.samples_per_model, source.name)
        with open_source(spec, source) as generator:
            answers = generator(prompts, decoding) if prompts else []
        for row, texts in zip(rows, answers, strict=True):
            row["candidates"].extend({"model": source.name, "text": t, "finish_reason": None, "origin": "sampled"} for t in texts)
        counts[f"samples.{source.name}"] = sum(len(t) for t in answers)
        used.append(source.name)
    return rows, counts, used
