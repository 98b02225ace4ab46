"""Stage `gate`: promote the candidate only if it is measurably better than the champion and
the base on every gated metric (`evals.gate.rules`, decided on paired bootstrap intervals
over the eval stages' per-item scores). The decision and its reasons go to MLflow and the
task log; on pass the candidate is registered as a new version of the model named after the
spec and the aliases move (`challenger`, then `champion`; the old one becomes
`previous-champion`); on fail the stage fails, so the DAG stops before rollout and the
champion stays."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections import defaultdict
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)

EVAL_STAGES = ("eval_perplexity", "eval_code", "eval_choice", "eval_judge")
PREVIOUS = "previous-champion"


class GateStage:
    name: ClassVar[str] = "gate"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = (*EVAL_STAGES, "dpo")

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        return {"gate": spec.evals.gate.model_dump(mode="json")}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}

    def run(self, ctx: StageContext) -> StageResult:
        import mlflow

        from domainllm.evals.gate import Rule, decide
        from domainllm.evals.registry import champion

        cfg = ctx.spec.evals.gate
        candidate = ctx.upstream["dpo"].info["model_path"]
        current = champion(ctx.spec)
        if current is not None and current.model_path == candidate:
            log.info("gate: the candidate %s is already the champion (version %s); nothing to decide", candidate, current.version)
            return StageResult(metrics={"gate.passed": 1.0}, info={"passed": True, "already_champion": True, "version": current.version})
        scores = self._scores(ctx)
        self._report(ctx, scores)
        rules = [Rule(r.metric, r.higher_is_better, r.kind, r.margin, r.relative, tuple(r.against)) for r in cfg.rules]
        try:
            decision = decide(rules, scores, confidence=cfg.confidence, samples=cfg.bootstrap_samples)
        except ValueError as exc:
            raise StageError(f"evals.gate.rules: {exc}") from None
        record = {"passed": decision.passed, "candidate": candidate, "champion": current.version if current else None,
                  "reasons": decision.reasons,
                  "checks": [{"metric": c.rule.metric, "against": c.against, "compared_with": c.baseline_role,
                              "gain": c.difference.mean, "low": c.difference.low, "high": c.difference.high,
                              "items": c.difference.items, "threshold": c.threshold, "passed": c.passed}
                             for c in decision.checks]}  # fmt: skip
        for line in decision.reasons:
            log.info("gate: %s", line)
        mlflow.log_dict(record, "gate_decision.json")
        mlflow.set_tags({"domainllm.gate": "passed" if decision.passed else "failed"})
        mlflow.log_metric("gate.passed", float(decision.passed))
        if not decision.passed:
            failed = [c.reason for c in decision.checks if not c.passed]
            raise StageError("gate: the candidate is not promoted; the champion stays.\n  " + "\n  ".join(failed))
        version = self._promote(ctx, candidate, current)
        with ctx.out.fs.open(ctx.out.file("decision.json"), "w") as fh:
            json.dump({**record, "version": version}, fh, indent=2)
        return StageResult(metrics={"gate.passed": 1.0, **{f"gate.{c.rule.metric}.{c.against}.gain": c.difference.mean for c in decision.checks}},
                           info={"passed": True, "version": version, "model_path": candidate}, reports=["decision.json"])  # fmt: skip

    def _report(self, ctx: StageContext, scores: dict[str, dict[str, list[float]]]) -> None:
        """The comparison table (task log, MLflow) and plot (MLflow, and the stage output)."""
        import mlflow

        from domainllm.evals.report import plot, table

        text = table(scores)
        log.info("gate: candidate vs champion vs base (per-item means)\n%s", text)
        mlflow.log_text(text, "comparison.md")
        png = plot(scores)
        with ctx.out.fs.open(ctx.out.file("comparison.png"), "wb") as fh:
            fh.write(png)
        with ctx.out.fs.open(ctx.out.file("comparison.md"), "w") as fh:
            fh.write(text)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # logged now: on a failed gate nothing is published
            path = f"{tmp}/comparison.png"
            with open(path, "wb") as fh:
                fh.write(png)
            mlflow.log_artifact(path)

    def _scores(self, ctx: StageContext) -> dict[str, dict[str, list[float]]]:
        """scores[metric][role], the items of every role in the same order (by item id)."""
        import pyarrow.parquet as pq

        from domainllm.stages.evaluate import ITEMS_FILE

        by: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for stage in EVAL_STAGES:
            if not ctx.upstream[stage].info.get("enabled", True):
                continue
            with ctx.layout.fs.open(f"{ctx.upstream_dir(stage)}/{ITEMS_FILE}", "rb") as fh:
                for row in pq.read_table(fh, columns=["role", "metric", "item_id", "score"]).to_pylist():
                    by[row["metric"]][row["role"]][row["item_id"]] = row["score"]
        scores: dict[str, dict[str, list[float]]] = {}
        for metric, roles in by.items():
            ids = sorted(roles["candidate"])
            for role, items in roles.items():
                if sorted(items) != ids:
                    raise StageError(f"gate: {metric} was scored on different items for {role} and the candidate; rerun the eval stages")
            scored = [i for i in ids if not any(math.isnan(items[i]) for items in roles.values())]
            if len(scored) < len(ids):  # judge replies that could not be read: compare like with like
                log.info("gate: %s: %d of %d items left out, unscored for some model", metric, len(ids) - len(scored), len(ids))
            if not scored:
                raise StageError(f"gate: {metric} has no item scored for every model (see the eval stage's `unscored` count)")
            scores[metric] = {role: [items[i] for i in scored] for role, items in roles.items()}
        return scores

    def _promote(self, ctx: StageContext, candidate: str, current) -> str:
        """Registers the candidate and moves the aliases; returns the new version."""
        import mlflow
        from mlflow.exceptions import MlflowException

        from domainllm.evals.registry import CHALLENGER, CHAMPION

        client = mlflow.MlflowClient()
        name = ctx.spec.name
        with contextlib.suppress(MlflowException):  # registered by an earlier run
            client.create_registered_model(name)
        run = mlflow.active_run()
        mv = client.create_model_version(name, source=candidate, run_id=run.info.run_id if run else None,
                                         tags={"domainllm.run_id": ctx.run_id, "domainllm.model_path": candidate})  # fmt: skip
        client.set_registered_model_alias(name, CHALLENGER, mv.version)
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, current.version)
        client.set_registered_model_alias(name, CHAMPION, mv.version)
        log.info("gate: passed; %s version %s is the champion%s", name, mv.version,
                 f" (was version {current.version})" if current else "")  # fmt: skip
        return str(mv.version)
