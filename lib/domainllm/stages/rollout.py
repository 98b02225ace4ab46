"""Stage `rollout`: the version the gate promoted goes to users through the gateway, as a
canary whose share of traffic rises step by step (`serving.rollout`). Every step is judged
on the gateway's metrics against the stable version and recorded in MLflow (one metric
point per step, `rollout_steps.json`). All steps pass: the canary becomes the stable
deployment and the registry alias `production` moves to it (the old one is
`previous-production`). A step fails: traffic goes back to the stable version, the canary
stops, `production` stays, and the stage fails with the reasons.

Locally the deployments and the gateway are supervised processes that outlive the task
(`domainllm serve status|stop`). With the Kubernetes launcher they are vLLM Deployments and
Services the stage makes, and the chart's gateway replicas read the routes ConfigMap it
writes (serve/k8s/). The stage always runs (it is cheap when the version is
already serving): what serves can change under it, e.g. a stopped server."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)


class RolloutStage(StageDefaults):
    name: ClassVar[str] = "rollout"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("gate", "kb_index", "intents")
    always_run: ClassVar[bool] = True

    def config(self, spec: Spec) -> dict[str, Any]:
        return {"serving": spec.serving.model_dump(mode="json")}

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.serve.gateway.augment import AUGMENT_FILE, write_config
        from domainllm.serve.local_gateway import LocalGateway

        spec, cfg = ctx.spec, ctx.spec.serving
        if not cfg.enabled:
            log.info("rollout: serving.enabled is false; nothing is served")
            return StageResult(info={"enabled": False})
        version = str(ctx.upstream["gate"].info["version"])
        model_path = served_copy(spec, version)
        model_path, adapters = lora_parts(spec, version, model_path) if cfg.lora.enabled else (model_path, None)
        augment = augment_config(spec, ctx.upstream["kb_index"].info, ctx.upstream["intents"].info)
        if spec.runtime.launcher == "kubernetes":
            return self._on_cluster(ctx, version, model_path, adapters, augment)
        gateways = LocalGateway(spec.name)
        augment_path = gateways.routes_path.with_name(AUGMENT_FILE)
        with restored_on_failure(augment_path):  # whatever fails, the stable version answers as before: its retrieval too
            if augment is None:
                augment_path.unlink(missing_ok=True)
            else:  # before the gateway (re)starts: it reads retrieval and routing from here
                write_config(augment_path, augment)
            return self._roll_out(ctx, version, model_path, adapters, gateways)

    def _roll_out(self, ctx: StageContext, version: str, model_path: str, adapters, gateways) -> StageResult:
        from domainllm.serve.local import LocalDeployments
        from domainllm.serve.traffic import LocalTraffic

        spec, cfg = ctx.spec, ctx.spec.serving
        gateway = gateways.ensure(log_root(spec), port=cfg.gateway_port, policy=cfg.gateway, scrub_pii=cfg.scrub_pii)
        deployments = LocalDeployments(spec.name, cfg)
        outcome = run_rollout(ctx, version, model_path, adapters, deployments, LocalTraffic(gateway), gateway.key("platform"))
        if gateways.get() is None:
            raise StageError(f"rollout: the gateway stopped after the rollout; its log: {gateway.log_path}")
        return finish(ctx, version, model_path, outcome, gateway.url, asdict(deployments.get("stable")))


    def _on_cluster(self, ctx: StageContext, version: str, model_path: str, adapters, augment: dict | None) -> StageResult:
        """The same rollout with vLLM Deployments and the routes ConfigMap (serve/k8s/)."""
        from domainllm.k8s.api import Api
        from domainllm.serve.k8s.deployments import ClusterDeployments
        from domainllm.serve.k8s.traffic import ClusterTraffic

        spec = ctx.spec
        api = Api(spec.runtime.kubernetes.namespace)
        traffic, deployments = ClusterTraffic(spec, api), ClusterDeployments(spec, api)
        _, _, augment_before = traffic.read()
        try:  # whatever fails, the stable version answers as before: its retrieval too
            traffic.set_augment(augment)
            outcome = run_rollout(ctx, version, model_path, adapters, deployments, traffic, os.environ.get("DOMAINLLM_GATEWAY_KEY"))
        except BaseException:
            with contextlib.suppress(Exception):
                traffic.set_augment(augment_before)
            raise
        return finish(ctx, version, model_path, outcome, traffic.url, asdict(deployments.get("stable")))


def run_rollout(ctx: StageContext, version: str, model_path: str, adapters, deployments, traffic, probe_key: str | None):
    """`roll_out` with the spec's probes and quality reader, every step recorded in MLflow;
    a failure is a StageError with the steps recorded."""
    import mlflow

    from domainllm.serve.rollout import RolloutFailed, Step, prober, roll_out
    from domainllm.serve.vllm_server import ServerError

    spec, cfg = ctx.spec, ctx.spec.serving
    probe = None
    if cfg.rollout.probe_requests:
        if not probe_key:
            raise StageError("serving.rollout.probe_requests needs a platform key of the gateway (on Kubernetes: "
                             "runtime.kubernetes.serving.probe_key_secret)")  # fmt: skip
        probe = prober(traffic.url, probe_key, spec.name, probe_prompts(cfg.rollout.probe_prompts), max_tokens=cfg.rollout.probe_max_tokens)
    steps: list[Step] = []

    def on_step(step: Step) -> None:
        steps.append(step)
        mlflow.log_metrics(step_metrics(step), step=len(steps))

    try:
        return roll_out(version, model_path, cfg=cfg.rollout, deployments=deployments, traffic=traffic, probe=probe,
                        on_step=on_step, adapters=adapters, quality=quality_reader(spec))  # fmt: skip
    except RolloutFailed as exc:
        mlflow.log_dict(_steps_record(version, "rolled_back", exc.steps), "rollout_steps.json")
        mlflow.set_tags({"domainllm.rollout": "rolled_back"})
        raise StageError(f"rollout: {exc}") from None
    except ServerError as exc:  # the first version itself cannot be served: a fact about the model, not a side check
        mlflow.set_tags({"domainllm.rollout": "not_served"})
        raise StageError(f"rollout: version {version} cannot be served: {exc}") from None


def finish(ctx: StageContext, version: str, model_path: str, outcome, gateway_url: str, deployment: dict) -> StageResult:
    """`production` moves to the version that now serves; the record goes to MLflow and the stage."""
    import mlflow

    spec = ctx.spec
    previous = set_production(spec, version)
    record = {**_steps_record(version, outcome.result, outcome.steps), "previous_production": previous,
              "gateway": f"{gateway_url}/v1", "deployment": deployment}  # fmt: skip
    mlflow.log_dict(record, "rollout_steps.json")
    mlflow.set_tags({"domainllm.rollout": outcome.result})
    with ctx.out.fs.open(ctx.out.file("rollout.json"), "w") as fh:
        json.dump(record, fh, indent=2)
    log.info("rollout: version %s serves all traffic at %s/v1 (model %r); %s", version, gateway_url, spec.name,
             {"first": "the first version served", "promoted": f"promoted over version {outcome.previous}",
              "already_serving": "it already did"}[outcome.result])  # fmt: skip
    return StageResult(metrics={"rollout.steps": float(len(outcome.steps))},
                       info={"enabled": True, "version": version, "result": outcome.result, "gateway_url": gateway_url,
                             "model_path": model_path, "previous": outcome.previous},
                       reports=["rollout.json"])  # fmt: skip


def step_metrics(step) -> dict[str, float]:
    """One canary step as MLflow metrics."""
    v = step.verdict
    out = {"rollout.canary_percent": step.percent, "rollout.step_passed": float(v.passed),
           "rollout.canary.requests": v.canary.requests, "rollout.canary.error_rate": v.canary.error_rate,
           "rollout.stable.requests": v.stable.requests, "rollout.stable.error_rate": v.stable.error_rate}  # fmt: skip
    for side, stats in (("canary", v.canary), ("stable", v.stable)):
        if stats.mean_latency_s:
            out[f"rollout.{side}.latency_s"] = stats.mean_latency_s
        if (p95 := stats.quantile_s(0.95)) is not None:
            out[f"rollout.{side}.p95_latency_s"] = p95
        q = getattr(v.quality, side, None) if v.quality is not None else None
        if q is not None:
            out[f"rollout.{side}.votes"] = float(q.votes)
            if q.down_rate is not None:
                out[f"rollout.{side}.down_rate"] = q.down_rate
            if q.judge_mean is not None:
                out[f"rollout.{side}.judge_score"] = q.judge_mean
    return out


def quality_reader(spec: Spec):
    """What users (and the judge, with `serving.rollout.judge_sample`) said about each
    version during a step, from the request log."""
    from domainllm.serve.quality import step_quality

    cfg = spec.serving.rollout
    judge = None
    if cfg.judge_sample:
        from domainllm.stages.evaluate import judge_for

        if not spec.evals.judge.enabled:
            raise StageError("serving.rollout.judge_sample needs a judge: set evals.judge.endpoint (or judge_sample: 0)")
        judge = judge_for(spec, where="serving.rollout (judge)")
    root = log_root(spec)

    def read(since: float, canary: str, stable: str):
        return step_quality(root, since, canary=canary, stable=stable, cfg=cfg, harvest_cfg=spec.flywheel.harvest, judge=judge)

    return read


@contextlib.contextmanager
def restored_on_failure(path: Path) -> Iterator[None]:
    """`path` as it was before the block when the block raises (anything: a failed step,
    MLflow down, a kill), replaced atomically; removed when it did not exist."""
    before = path.read_bytes() if path.exists() else None
    try:
        yield
    except BaseException:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            tmp = path.with_name(f".{path.name}.restore")
            tmp.write_bytes(before)
            tmp.replace(path)
        raise


def _steps_record(version: str, result: str, steps: list) -> dict:
    return {"version": version, "result": result,
            "steps": [{"percent": s.percent, "passed": s.verdict.passed, "seconds": round(s.seconds, 2), "reasons": s.verdict.reasons,
                       "canary": asdict(s.verdict.canary), "stable": asdict(s.verdict.stable),
                       "quality": asdict(s.verdict.quality) if s.verdict.quality else None} for s in steps]}  # fmt: skip


def log_root(spec: Spec) -> str:
    """Where the gateway logs requests and feedback."""
    from domainllm.artifacts.fs import join

    return spec.serving.log_root or join(spec.artifact_root, "serving-logs")


def probe_prompts(path: str) -> list[str]:
    from domainllm.evals.suites import load_judge_items

    try:
        return [item.question for item in load_judge_items(path)]
    except (OSError, ValueError) as exc:
        raise StageError(f"serving.rollout.probe_prompts: {exc}") from None


def served_copy(spec: Spec, version: str) -> str:
    """A local folder of registered `version` for vLLM: the registry's copy itself when it is
    local, else one downloaded once under `$DOMAINLLM_HOME/serve/<name>/models/<version>`
    (it must outlive this task: the server keeps running)."""
    import mlflow

    from domainllm.artifacts.fs import is_local, url_to_fs
    from domainllm.env import home
    from domainllm.evals.registry import COMPLETE
    from domainllm.tracking import experiment_id

    experiment_id(spec)  # sets the tracking URI
    source = mlflow.MlflowClient().get_model_version(spec.name, version).source
    fs, path = url_to_fs(source)
    if is_local(fs):
        return path
    dest = home() / "serve" / spec.name / "models" / version
    if not (dest / COMPLETE).exists():
        tmp = dest.with_name(f"{version}.tmp")
        fs.get(path.rstrip("/") + "/", str(tmp), recursive=True)
        tmp.rename(dest)
        (dest / COMPLETE).touch()
    return str(dest)


def lora_parts(spec: Spec, version: str, model_path: str) -> tuple[str, dict[str, str]]:
    """`serving.lora.enabled`: the base model and the adapter (served under the pipeline's
    name) of registered `version`, which must have been trained with LoRA."""
    from pathlib import Path

    from domainllm.evals.registry import ADAPTER_DIR, BASE_DIR

    adapter, base = Path(model_path, ADAPTER_DIR), Path(model_path, BASE_DIR)
    if not (adapter / "adapter_config.json").exists() or not (base / "config.json").exists():
        raise StageError(f"serving.lora.enabled: version {version} has no LoRA adapter with its base model in the registry "
                         f"({model_path}); train with LoRA (training.dpo.lora) or serve the full model (serving.lora.enabled: false)")  # fmt: skip
    return str(base), {spec.name: str(adapter)}


def set_production(spec: Spec, version: str) -> str | None:
    """Moves `production` to `version` (the one it leaves becomes `previous-production`);
    returns that previous version."""
    import mlflow

    from domainllm.evals.registry import PREVIOUS_PRODUCTION, PRODUCTION, by_alias

    current = by_alias(spec, PRODUCTION)
    client = mlflow.MlflowClient()
    if current is not None and current.version != version:
        client.set_registered_model_alias(spec.name, PREVIOUS_PRODUCTION, current.version)
    client.set_registered_model_alias(spec.name, PRODUCTION, version)
    return current.version if current is not None and current.version != version else None


def augment_config(spec: Spec, kb: dict[str, Any], intents: dict[str, Any]) -> dict[str, Any] | None:
    """What the gateway needs for retrieval and intent routing (its `augment.json`): the
    knowledge base version of this run, its embedding model, the classifier and each route's
    policy; None without a knowledge base."""
    if not kb.get("enabled"):
        return None
    cfg = spec.serving
    # a context that cannot fit the served window would make every augmented request fail:
    # at most ~3/4 of `max_model_len` tokens' worth of characters (at ~1.5 characters a token)
    cap = int(cfg.max_model_len * 0.75 * 1.5) if cfg.max_model_len else None

    def policy(p) -> dict[str, Any]:
        out = p.model_dump(mode="json")
        out["max_chars"] = min(out["max_chars"], cap) if cap else out["max_chars"]
        return out

    routes = {"default": {"retrieval": policy(cfg.retrieval), "system": None},
              **{r.name: {"retrieval": policy(r.retrieval), "system": r.system} for r in cfg.intents.routes}}
    config: dict[str, Any] = {"knowledge": {"store": kb["store"], "embedding": kb["embedding"]["path"]}, "routes": routes}
    if intents.get("enabled"):
        config["intents"] = {"classifier": intents["classifier"], "labels": intents["labels"],
                             "min_confidence": cfg.intents.min_confidence, "fallback": cfg.intents.fallback}  # fmt: skip
    return config
