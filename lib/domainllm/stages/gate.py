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
from collections import defaultdict
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)

EVAL_STAGES = ("eval_perplexity", "eval_code", "eval_choice", "eval_judge", "eval_qa")
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
        from domainllm.evals.registry import champion, is_champion

        cfg = ctx.spec.evals.gate
        candidate, fingerprint = ctx.upstream["dpo"].info["model_path"], ctx.upstream["dpo"].fingerprint
        current = champion(ctx.spec)
        if is_champion(current, fingerprint, candidate):
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
        version, stored = self._promote(ctx, candidate, fingerprint, current)
        with ctx.out.fs.open(ctx.out.file("decision.json"), "w") as fh:
            json.dump({**record, "version": version}, fh, indent=2)
        return StageResult(metrics={"gate.passed": 1.0, **{f"gate.{c.rule.metric}.{c.against}.gain": c.difference.mean for c in decision.checks}},
                           info={"passed": True, "version": version, "model_path": candidate, "registered_path": stored},
                           reports=["decision.json"])  # fmt: skip

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

        from domainllm.evals.gate import paired
        from domainllm.stages.evaluate import ITEMS_FILE

        by: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for stage in EVAL_STAGES:
            if not ctx.upstream[stage].info.get("enabled", True):
                continue
            with ctx.layout.fs.open(f"{ctx.upstream_dir(stage)}/{ITEMS_FILE}", "rb") as fh:
                for row in pq.read_table(fh, columns=["role", "metric", "item_id", "score"]).to_pylist():
                    by[row["metric"]][row["role"]][row["item_id"]] = row["score"]
        try:
            scores, left_out = paired(by)
        except ValueError as exc:
            raise StageError(f"gate: {exc}") from None
        for metric, n in left_out.items():
            if n:
                log.info("gate: %s: %d items left out, unscored for some model", metric, n)
        return scores

    def _promote(self, ctx: StageContext, candidate: str, fingerprint: str, current) -> tuple[str, str]:
        """Registers an immutable copy of the candidate and moves the aliases; returns the new
        version and where the copy is."""
        import mlflow
        from mlflow.exceptions import MlflowException

        from domainllm.evals.registry import CHALLENGER, CHAMPION, TAG_FINGERPRINT, TAG_RUN_ID, store_model

        client = mlflow.MlflowClient()
        name = ctx.spec.name
        with contextlib.suppress(MlflowException):  # registered by an earlier run
            client.create_registered_model(name)
        run = mlflow.active_run()
        stored = store_model(ctx.spec, candidate, fingerprint)
        mv = client.create_model_version(name, source=stored, run_id=run.info.run_id if run else None,
                                         tags={TAG_RUN_ID: ctx.run_id, "domainllm.trained_at": candidate,
                                               TAG_FINGERPRINT: fingerprint})  # fmt: skip
        client.set_registered_model_alias(name, CHALLENGER, mv.version)
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, current.version)
        client.set_registered_model_alias(name, CHAMPION, mv.version)
        log.info("gate: passed; %s version %s is the champion%s", name, mv.version,
                 f" (was version {current.version})" if current else "")  # fmt: skip
        return str(mv.version), stored
