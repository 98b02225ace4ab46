"""Rolling a model version out behind the gateway: the new version starts as the `canary`
deployment, its share of traffic rises step by step (`serving.rollout.steps`), and each step
is judged on the gateway's metrics (summed over its replicas) and, when given, on what users
and a judge said about each version's answers, against the `stable` version. Every step
passes: the canary takes all traffic and becomes `stable` (no restart) and the old one stops.
A step fails: traffic goes back to `stable`, the canary stops, and the rollout raises with the
reasons. The first version ever has nothing to compare with: it becomes `stable` once healthy.
Each step is handed to `on_step` (the stage records it in MLflow).

The same logic drives local processes (`LocalDeployments`, `LocalTraffic`) and Kubernetes
(`serve/k8s/`: Deployments and Services of vLLM, the routes ConfigMap, every gateway pod)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from domainllm.serve.canary import Quality, Verdict, judge, step_delta
from domainllm.serve.gateway.routes import Route
from domainllm.serve.traffic import Traffic
from domainllm.serve.vllm_server import ServerError
from domainllm.spec.serving import RolloutConfig

log = logging.getLogger(__name__)


class Served(Protocol):
    version: str
    served_name: str

    @property
    def base_url(self) -> str: ...


class Deployments(Protocol):
    api_key: str | None
    """What the servers require (a direct warm-up sends it); None: nothing."""

    def get(self, name: str) -> Served | None: ...

    def start(self, name: str, version: str, model_path: str, *, adapters: dict[str, str] | None = None) -> Served:
        """Raises ServerError when the version cannot be served."""
        ...

    def stop(self, name: str) -> None: ...

    def rename(self, old: str, new: str) -> Served: ...


class RolloutFailed(RuntimeError):
    def __init__(self, message: str, steps: list[Step]) -> None:
        super().__init__(message)
        self.steps = steps


@dataclass(frozen=True)
class Step:
    percent: float
    verdict: Verdict
    seconds: float


@dataclass
class Outcome:
    result: str
    """`first` (nothing to compare with), `promoted`, `already_serving`."""
    version: str
    steps: list[Step] = field(default_factory=list)
    previous: str | None = None


QualityReader = Callable[[float, str, str], Quality]
"""(step start, canary version, stable version) -> what users and the judge said since."""


def roll_out(version: str, model_path: str, *, cfg: RolloutConfig, deployments: Deployments, traffic: Traffic,
             probe: Callable[[int], None] | None = None, on_step: Callable[[Step], None] | None = None,
             adapters: dict[str, str] | None = None, quality: QualityReader | None = None) -> Outcome:  # fmt: skip
    stable = deployments.get("stable")
    if stable is not None and stable.version == version:
        log.info("rollout: version %s already serves all traffic", version)
        return Outcome("already_serving", version)
    if stable is None:
        first = deployments.start("stable", version, model_path, adapters=adapters)
        traffic.route([Route("stable", first.base_url, version, 100)])
        log.info("rollout: first version %s takes all traffic at %s/v1", version, traffic.url)
        return Outcome("first", version)
    try:
        canary = deployments.start("canary", version, model_path, adapters=adapters)
    except ServerError as exc:
        raise RolloutFailed(f"version {version} could not be served as a canary; version {stable.version} keeps all "
                            f"traffic: {exc}", []) from None  # fmt: skip
    steps: list[Step] = []
    try:
        warm_up(canary.base_url, canary.served_name, api_key=deployments.api_key)
        for percent in cfg.steps:
            _step(percent, version, stable, canary, traffic, cfg, probe, on_step, steps, quality)
    except BaseException:  # a failed step, or anything else (metrics unreadable, MLflow down, a kill): stable alone serves
        try:
            traffic.route([Route("stable", stable.base_url, stable.version, 100)])
        finally:
            deployments.stop("canary")
        raise
    traffic.route([Route("stable", canary.base_url, version, 100)])
    deployments.stop("stable")
    deployments.rename("canary", "stable")
    log.info("rollout: version %s promoted; version %s stopped", version, stable.version)
    return Outcome("promoted", version, steps, previous=stable.version)


def _step(percent: float, version: str, stable: Served, canary: Served, traffic: Traffic, cfg: RolloutConfig,
          probe: Callable[[int], None] | None, on_step: Callable[[Step], None] | None, steps: list[Step],
          quality: QualityReader | None) -> None:  # fmt: skip
    """One canary step: routes at `percent` on every gateway replica, judged once the canary
    has served enough and, with a quality reader, enough votes have come in for both versions
    (or the step's time is up); raises RolloutFailed when it fails."""
    traffic.route([Route("stable", stable.base_url, stable.version, 100 - percent),
                   Route("canary", canary.base_url, version, percent)])  # fmt: skip
    t0, since = time.monotonic(), time.time()
    before = traffic.snapshot()
    while True:
        if probe is not None and cfg.probe_requests:
            probe(cfg.probe_requests)
        served = step_delta(before, traffic.snapshot())
        verdict = judge({}, served, cfg)
        q = None
        if quality is not None and verdict.enough:  # the request log is read once the metrics have their sample
            q = quality(since, version, stable.version)
            verdict = judge({}, served, cfg, quality=q)
        waited = time.monotonic() - t0
        if waited > cfg.step_timeout_s or (verdict.enough and (q is None or not verdict.passed or waited > cfg.vote_wait_s
                                                                or _votes_in(q, cfg, stable_served=percent < 100))):  # fmt: skip
            break
        time.sleep(1)
    step = Step(percent, verdict, time.monotonic() - t0)
    steps.append(step)
    log.info("rollout: canary at %g%%: %s\n  %s", percent, "ok" if verdict.passed else "FAILED", "\n  ".join(verdict.reasons))
    if on_step is not None:
        on_step(step)
    if not verdict.passed:
        raise RolloutFailed(f"rollout of version {version} rolled back at {percent:g}%: version {stable.version} keeps all "
                            f"traffic.\n  " + "\n  ".join(verdict.reasons), steps)  # fmt: skip


def _votes_in(q: Quality, cfg: RolloutConfig, *, stable_served: bool = True) -> bool:
    """Whether both versions have the votes (and judge scores, when judged) a comparison needs;
    at 100% the stable version gets no traffic: the canary's alone are waited for."""
    sides = (q.canary, q.stable) if stable_served else (q.canary,)
    votes = all(v.votes >= cfg.min_votes for v in sides)
    judged = not cfg.judge_sample or all(v.judged >= cfg.judge_min_scored for v in sides)
    return votes and judged


def warm_up(base_url: str, model: str, *, api_key: str | None = None, requests: int = 16, concurrency: int = 8) -> None:
    """A few requests straight to a new server before it gets traffic: its first batches are
    slow (kernels built for new shapes), and a cold canary must not be judged by them."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def one(i: int) -> None:  # both endpoints, prompts of several lengths: each new shape is slow once
        text = "Hello, how do I write this? " * (1 + i % 4)
        if i % 2:
            path, body = "chat/completions", {"messages": [{"role": "user", "content": text}]}
        else:
            path, body = "completions", {"prompt": text}
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{base_url}/{path}", json={"model": model, "max_tokens": 8 + i % 8, **body}, headers=headers, timeout=120)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))


def prober(gateway_url: str, key: str, model: str, prompts: list[str], *, max_tokens: int = 16,
           concurrency: int = 8) -> Callable[[int], None]:  # fmt: skip
    """Sends n chat requests through the gateway (synthetic traffic for a canary step where
    there are no users: the demo, tests). Their answers are served and logged, marked as the
    rollout's own traffic."""
    import httpx

    from domainllm.serve.gateway.exchange import SOURCE_HEADER

    headers = {SOURCE_HEADER: "rollout-probe", "Authorization": f"Bearer {key}"}

    def probe(n: int) -> None:
        def one(i: int) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": prompts[i % len(prompts)]}], "max_tokens": max_tokens}
            with contextlib.suppress(httpx.HTTPError):  # counted by the gateway's metrics either way
                httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers=headers, timeout=120)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))

    return probe
