"""Rolling a model version out behind the gateway, locally: the new version starts as the
`canary` deployment, its share of traffic rises step by step (`serving.rollout.steps`), and
each step is judged on the gateway's metrics against the `stable` version. Every step passes:
the canary takes all traffic and becomes `stable` (no restart) and the old one stops. A step
fails: traffic goes back to `stable`, the canary stops, and the rollout raises with the
reasons. The first version ever has nothing to compare with: it becomes `stable` once healthy.
Each step is handed to `on_step` (the stage records it in MLflow)."""

from __future__ import annotations

import contextlib
import logging
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from domainllm.serve.canary import RouteStats, Verdict, judge, parse_metrics
from domainllm.serve.gateway.routes import Route, write_routes
from domainllm.serve.local import LocalDeployments
from domainllm.serve.local_gateway import GatewayProcess
from domainllm.serve.vllm_server import ServerError
from domainllm.spec.serving import RolloutConfig

log = logging.getLogger(__name__)

RELOAD_S = 0.6  # the gateway rereads its routes at most every 0.5 s


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


def scrape(gateway: GatewayProcess) -> dict[str, RouteStats]:
    with urllib.request.urlopen(f"{gateway.admin_url}/metrics", timeout=10) as resp:
        return parse_metrics(resp.read().decode())


def roll_out(version: str, model_path: str, *, cfg: RolloutConfig, deployments: LocalDeployments, gateway: GatewayProcess,
             probe: Callable[[int], None] | None = None, on_step: Callable[[Step], None] | None = None,
             adapters: dict[str, str] | None = None) -> Outcome:  # fmt: skip
    routes = Path(gateway.routes_path)
    stable = deployments.get("stable")
    if stable is not None and stable.version == version:
        log.info("rollout: version %s already serves all traffic", version)
        return Outcome("already_serving", version)
    if stable is None:
        first = deployments.start("stable", version, model_path, adapters=adapters)
        write_routes(routes, [Route("stable", first.base_url, version, 100)])
        log.info("rollout: first version %s takes all traffic at %s/v1", version, gateway.url)
        return Outcome("first", version)
    try:
        canary = deployments.start("canary", version, model_path, adapters=adapters)
    except ServerError as exc:
        raise RolloutFailed(f"version {version} could not be served as a canary; version {stable.version} keeps all "
                            f"traffic: {exc}", []) from None  # fmt: skip
    steps: list[Step] = []
    try:
        warm_up(canary.base_url, canary.served_name)
        for percent in cfg.steps:
            _step(percent, version, stable, canary, routes, cfg, gateway, probe, on_step, steps)
    except BaseException:  # a failed step, or anything else (metrics unreadable, MLflow down, a kill): stable alone serves
        write_routes(routes, [Route("stable", stable.base_url, stable.version, 100)])
        time.sleep(RELOAD_S)
        deployments.stop("canary")
        raise
    write_routes(routes, [Route("stable", canary.base_url, version, 100)])
    time.sleep(RELOAD_S)
    deployments.stop("stable")
    deployments.rename("canary", "stable")
    log.info("rollout: version %s promoted; version %s stopped", version, stable.version)
    return Outcome("promoted", version, steps, previous=stable.version)


def _step(percent: float, version: str, stable, canary, routes: Path, cfg: RolloutConfig, gateway: GatewayProcess,
          probe: Callable[[int], None] | None, on_step: Callable[[Step], None] | None, steps: list[Step]) -> None:  # fmt: skip
    """One canary step: routes at `percent`, judged once the canary has served enough (or
    its time is up); raises RolloutFailed when it fails."""
    write_routes(routes, [Route("stable", stable.base_url, stable.version, 100 - percent),
                          Route("canary", canary.base_url, version, percent)])  # fmt: skip
    time.sleep(RELOAD_S)
    t0 = time.monotonic()
    before = scrape(gateway)
    while True:
        if probe is not None and cfg.probe_requests:
            probe(cfg.probe_requests)
        verdict = judge(before, scrape(gateway), cfg)
        if verdict.enough or time.monotonic() - t0 > cfg.step_timeout_s:
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


def warm_up(base_url: str, model: str, *, requests: int = 16, concurrency: int = 8) -> None:
    """A few requests straight to a new server before it gets traffic: its first batches are
    slow (kernels built for new shapes), and a cold canary must not be judged by them."""
    import httpx

    def one(i: int) -> None:  # both endpoints, prompts of several lengths: each new shape is slow once
        text = "Hello, how do I write this? " * (1 + i % 4)
        if i % 2:
            path, body = "chat/completions", {"messages": [{"role": "user", "content": text}]}
        else:
            path, body = "completions", {"prompt": text}
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{base_url}/{path}", json={"model": model, "max_tokens": 8 + i % 8, **body}, timeout=120)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))


def prober(gateway: GatewayProcess, model: str, prompts: list[str], *, max_tokens: int = 16,
           concurrency: int = 8) -> Callable[[int], None]:  # fmt: skip
    """Sends n chat requests through the gateway (synthetic traffic for a canary step where
    there are no users: the demo, tests). Their answers are served and logged, marked as the
    rollout's own traffic."""
    import httpx

    from domainllm.serve.gateway.exchange import SOURCE_HEADER

    headers = {SOURCE_HEADER: "rollout-probe", "Authorization": f"Bearer {gateway.key('platform')}"}

    def probe(n: int) -> None:
        def one(i: int) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": prompts[i % len(prompts)]}], "max_tokens": max_tokens}
            with contextlib.suppress(httpx.HTTPError):  # counted by the gateway's metrics either way
                httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=120)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))

    return probe
