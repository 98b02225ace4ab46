"""A person approves a flywheel-triggered round before its rollout: what they are shown (the
gate's comparison and checks, and where the round's data came from: principals flagged by
the harvest), and what a rejection undoes (the gate made the candidate `champion`; it goes
back to the version that serves, so the next round is compared with what users actually get)."""

from __future__ import annotations

import json
import logging

from domainllm.artifacts import RunLayout
from domainllm.artifacts.fs import join
from domainllm.spec import Spec

log = logging.getLogger(__name__)

TAG_APPROVAL = "domainllm.rollout_approval"


def _read(layout: RunLayout, stage: str, name: str) -> str | None:
    path = join(layout.stage_dir(stage), name)
    if not layout.fs.exists(path):
        return None
    with layout.fs.open(path, "r") as fh:
        return fh.read()


def round_flags(spec: Spec, dataset_version: str | None, flywheel_run: str | None = None) -> tuple[str | None, dict[str, list[str]]]:
    """(the flywheel run that made `dataset_version`, its harvest's flags per principal)."""
    from domainllm.flywheel.dataset import PreferenceDataset, dataset_root

    if not flywheel_run and dataset_version:
        versions = PreferenceDataset(dataset_root(spec)).versions()
        flywheel_run = next((v.get("run_id") for v in versions if v.get("version") == dataset_version), None)
    if not flywheel_run:
        return None, {}
    harvest = RunLayout(spec.artifact_root, flywheel_run).read_manifest("harvest")
    return flywheel_run, (harvest.info.get("flags") or {}) if harvest is not None else {}


def approval_body(spec: Spec, run_id: str, dataset_version: str | None, flywheel_run: str | None = None) -> str:
    """Markdown for the approver: the candidate, the gate's table and checks, the round's data."""
    layout = RunLayout(spec.artifact_root, run_id)
    gate = layout.read_manifest("gate")
    version = gate.info.get("version") if gate is not None else None
    lines = [f"**Roll out version {version} of `{spec.name}`** (training run `{run_id}`) as a canary?", ""]
    decision = _read(layout, "gate", "decision.json")
    if decision:
        record = json.loads(decision)
        lines += [f"The gate passed it against champion version {record.get('champion')}:", ""]
        lines += [f"- {reason}" for reason in record.get("reasons") or []]
        lines.append("")
    table = _read(layout, "gate", "comparison.md")
    lines += [table.strip() if table else "(the gate wrote no comparison table)", ""]
    flywheel_run, flags = round_flags(spec, dataset_version, flywheel_run)
    if flywheel_run:
        lines.append(f"Preference data: dataset version {dataset_version}, harvested by flywheel run `{flywheel_run}`.")
        if flags:
            lines += ["", f"**{len(flags)} principal(s) flagged** in that harvest (their traffic may be an attempt to steer "
                          "the model):", ""]  # fmt: skip
            lines += [f"- `{p}`: {'; '.join(why)}" for p, why in sorted(flags.items())]
        else:
            lines.append("No principal was flagged in that harvest.")
    lines += ["", "Reject: the rollout is skipped, and `champion` goes back to the version that serves."]
    return "\n".join(lines)


def reject(spec: Spec, rejected_version: str | None) -> str | None:
    """The gate's promotion undone: `champion` back on the version that serves (`production`),
    or removed when nothing serves; the rejected version tagged. Returns the champion now."""
    import mlflow

    from domainllm.evals.registry import CHAMPION, PRODUCTION, by_alias
    from domainllm.tracking import experiment_id

    experiment_id(spec)  # sets the tracking URI
    client = mlflow.MlflowClient()
    serving = by_alias(spec, PRODUCTION)
    if rejected_version:
        client.set_model_version_tag(spec.name, rejected_version, TAG_APPROVAL, "rejected")
    if serving is not None:
        client.set_registered_model_alias(spec.name, CHAMPION, serving.version)
        log.info("approval: version %s rejected; champion is version %s again (it serves)", rejected_version, serving.version)
        return serving.version
    client.delete_registered_model_alias(spec.name, CHAMPION)
    log.info("approval: version %s rejected; no champion (nothing serves yet)", rejected_version)
    return None
