"""Run one stage under the contract: skip if up to date, stage, publish, manifest last."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from domainllm import __version__
from domainllm.artifacts import Manifest, RunLayout, new_staging, outputs_intact, publish, read_manifest
from domainllm.artifacts.fs import is_local
from domainllm.launch import ATTEMPT_ENV
from domainllm.spec import Spec, spec_digest
from domainllm.stages.registry import get_stage

log = logging.getLogger(__name__)


class StageError(RuntimeError):
    """A stage cannot run (missing upstream output, bad input)."""


@dataclass(frozen=True)
class StageOutcome:
    manifest: Manifest
    skipped: bool
    """True when the stage was already up to date and nothing ran."""


def code_version() -> str:
    """Package version plus the git commit when running from a checkout (images set
    DOMAINLLM_CODE_VERSION at build time instead)."""
    if os.environ.get("DOMAINLLM_CODE_VERSION"):
        return os.environ["DOMAINLLM_CODE_VERSION"]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        return f"{__version__}+g{sha}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def fingerprint(stage_name: str, version: str, config: dict, inputs: dict[str, str]) -> str:
    doc = {"stage": stage_name, "version": version, "config": config, "inputs": inputs}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_stage(
    spec: Spec,
    stage_name: str,
    run_id: str,
    *,
    force: bool = False,
    shard: int | None = None,
    reuse_shards: bool = False,
) -> StageOutcome:
    """Run one stage under the contract. A sharded stage runs as `shard` (one shard task:
    outputs to `<run>/.shards/<stage>/`, its own manifest) or, without `shard`, as the
    collect step: it runs whichever shards are missing or stale (all of them with `force`,
    unless `reuse_shards`), then publishes their outputs together as the stage's output."""
    stage = get_stage(stage_name)
    layout = RunLayout(spec.artifact_root, run_id)
    sharded = bool(getattr(stage, "sharded", False))
    if shard is not None and not sharded:
        raise StageError(f"stage {stage_name!r} is not sharded; run it without --shard")

    upstream: dict[str, Manifest] = {}
    for dep in stage.required(spec):
        manifest = layout.read_manifest(dep)
        if manifest is None:
            raise StageError(
                f"stage {stage_name!r} needs the output of stage {dep!r} for run {run_id!r}, which has not "
                f"finished; run it first: domainllm stage run {dep} --spec SPEC --run-id {run_id}"
            )
        upstream[dep] = manifest

    config = stage.config(spec)
    inputs = {f"stage:{dep}": m.fingerprint for dep, m in upstream.items()}
    inputs.update(stage.external_inputs(spec))
    if hasattr(stage, "run_inputs"):  # inputs that depend on the run's parameters (the flywheel's window)
        inputs.update(stage.run_inputs(spec, layout))
    fp = fingerprint(stage_name, stage.version, config, inputs)

    existing = layout.read_manifest(stage_name)
    if (
        not force
        and not getattr(stage, "always_run", False)
        and existing is not None
        and existing.fingerprint == fp
        and outputs_intact(layout.fs, layout.stage_dir(stage_name), existing)
    ):
        log.info("stage %s: up to date for run %s (fingerprint %s); nothing to do", stage_name, run_id, fp[:12])
        return StageOutcome(existing, skipped=True)

    from domainllm.stages.base import StageContext

    def context(staging) -> StageContext:
        return StageContext(spec=spec, run_id=run_id, layout=layout, out=staging, upstream=upstream, fingerprint=fp)

    meta = {"fp": fp, "inputs": inputs, "spec": spec, "run_id": run_id}
    if sharded:
        num_shards = stage.num_shards(spec)
        if shard is not None:
            if not 0 <= shard < num_shards:
                raise StageError(f"--shard {shard} is out of range: stage {stage_name} has {num_shards} shards (0-{num_shards - 1})")
            return _run_shard(stage, layout, context, meta, shard, num_shards, force=force)
        shards = [
            _run_shard(stage, layout, context, meta, i, num_shards, force=force and not reuse_shards).manifest
            for i in range(num_shards)
        ]
        return _run_tracked(stage, layout, context, meta, config, force, lambda ctx: stage.collect(ctx, shards))
    return _run_tracked(stage, layout, context, meta, config, force, stage.run)


def _manifest(stage_name: str, meta: dict, outputs, result, started: str, t0: float, mlflow_run_id=None) -> Manifest:
    return Manifest(
        stage=stage_name,
        run_id=meta["run_id"],
        fingerprint=meta["fp"],
        inputs=meta["inputs"],
        outputs=outputs,
        counts=result.counts,
        metrics=result.metrics,
        info=result.info,
        code_version=code_version(),
        spec_digest=spec_digest(meta["spec"]),
        mlflow_run_id=mlflow_run_id,
        attempt_id=os.environ.get(ATTEMPT_ENV),
        started_at=started,
        finished_at=_now(),
        duration_s=round(time.monotonic() - t0, 3),
    )


def _run_shard(stage, layout: RunLayout, context, meta: dict, shard: int, num_shards: int, *, force: bool) -> StageOutcome:
    name = stage.name
    shard_dir = layout.shard_dir(name, shard, num_shards)
    existing = read_manifest(layout.fs, shard_dir)
    if not force and existing is not None and existing.fingerprint == meta["fp"] and outputs_intact(layout.fs, shard_dir, existing):
        log.info("stage %s shard %d/%d: up to date; nothing to do", name, shard, num_shards)
        return StageOutcome(existing, skipped=True)
    started, t0 = _now(), time.monotonic()
    log.info("stage %s shard %d/%d: starting for run %s", name, shard, num_shards, meta["run_id"])
    staging = new_staging(layout.fs, layout.staging_root(), f"{name}~shard{shard:05d}")
    result = stage.run_shard(context(staging), shard, num_shards)
    result.info = {**result.info, "shard": shard, "num_shards": num_shards}
    manifest = _manifest(name, meta, staging.describe_outputs(), result, started, t0)
    publish(staging, shard_dir, manifest, layout.trash_root())
    log.info("stage %s shard %d/%d: done in %.1fs", name, shard, num_shards, manifest.duration_s)
    return StageOutcome(manifest, skipped=False)


def _run_other_rank(stage, context, meta: dict, body) -> StageOutcome:
    """Ranks other than 0 of a multi-process stage (training under torchrun) do their share
    of the work with a private scratch staging: only rank 0 publishes, writes the manifest
    and logs to MLflow. The shared staging must not be touched (new_staging would remove
    rank 0's live folder as a leftover)."""
    import tempfile

    from fsspec.implementations.local import LocalFileSystem

    from domainllm.artifacts import Staging
    from domainllm.distributed import rank

    started, t0 = _now(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"domainllm-{stage.name}-rank{rank()}-") as tmp:
        staging = Staging(LocalFileSystem(), tmp)
        result = body(context(staging))
        outputs = staging.describe_outputs()
    log.info("stage %s: rank %d done; rank 0 publishes the outputs", stage.name, rank())
    return StageOutcome(_manifest(stage.name, meta, outputs, result, started, t0), skipped=False)


def _run_tracked(stage, layout: RunLayout, context, meta: dict, config: dict, force: bool, body) -> StageOutcome:
    from domainllm.distributed import is_rank_zero
    from domainllm.tracking import stage_run

    if not is_rank_zero():
        return _run_other_rank(stage, context, meta, body)
    stage_name, run_id = stage.name, meta["run_id"]
    started, t0 = _now(), time.monotonic()
    log.info("stage %s: starting for run %s%s", stage_name, run_id, " (forced)" if force else "")
    with stage_run(meta["spec"], run_id, stage_name, {"stage": config}) as mlrun:
        import mlflow

        staging = new_staging(layout.fs, layout.staging_root(), stage_name)
        result = body(context(staging))
        manifest = _manifest(stage_name, meta, staging.describe_outputs(), result, started, t0, mlrun.info.run_id)
        # tracked before publishing: a result MLflow refuses fails the stage before its output looks complete
        mlflow.log_metrics({metric_name(f"count.{k}"): float(v) for k, v in result.counts.items()})
        mlflow.log_metrics({**{metric_name(k): v for k, v in result.metrics.items()}, "duration_s": manifest.duration_s})
        _log_curves(mlrun.info.run_id, result.curves)
        if result.tags:
            mlflow.set_tags(result.tags)
        mlflow.log_dict(json.loads(manifest.to_json()), "manifest.json")
        publish(staging, layout.stage_dir(stage_name), manifest, layout.trash_root())
        if getattr(stage, "sharded", False) and layout.fs.exists(layout.shards_root(stage_name)):
            layout.fs.rm(layout.shards_root(stage_name), recursive=True)  # now part of the published output

        final_dir = layout.stage_dir(stage_name)
        for rel in result.reports:
            _log_artifact(layout, f"{final_dir}/{rel}", rel)
    log.info(
        "stage %s: done in %.1fs; outputs in %s", stage_name, manifest.duration_s, layout.stage_dir(stage_name)
    )
    return StageOutcome(manifest, skipped=False)


_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")


def metric_name(name: str) -> str:
    """`name` as MLflow takes it: letters, digits, `_ - . : /` and spaces; anything else
    (`@` in `samples.alias:production@1`, `+`) becomes `_`. The manifest keeps the name as it is."""
    return _METRIC_UNSAFE.sub("_", name)


def _log_curves(mlflow_run_id: str, curves: dict[str, list[tuple[int, float]]]) -> None:
    """Whole series in batches: one store round trip per 1000 points, not per point."""
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    points = [Metric(metric_name(name), float(v), now, int(step)) for name, series in curves.items() for step, v in series]
    client = mlflow.MlflowClient()
    for i in range(0, len(points), 1000):
        client.log_batch(mlflow_run_id, metrics=points[i : i + 1000])


def _log_artifact(layout: RunLayout, path: str, rel: str) -> None:
    import tempfile

    import mlflow

    artifact_dir = os.path.dirname(rel) or None
    if is_local(layout.fs):
        mlflow.log_artifact(path, artifact_dir)
        return
    with tempfile.TemporaryDirectory() as tmp:  # object-store artifact root
        local = os.path.join(tmp, os.path.basename(rel))
        layout.fs.get(path, local)
        mlflow.log_artifact(local, artifact_dir)
