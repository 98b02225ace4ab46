"""Stage `eval_quantized`: what each quantization costs. The eval suites of
`quantize.suites` (with their `evals` settings) run on the full-precision model and on every
exported variant; the report gives each metric per variant and its difference from the full
model with a paired-bootstrap interval (`quantized.md`, `quantized.png`, MLflow), and each
registered variant version gets its scores as tags. With `quantize.serve_check`, each
compressed-tensors variant is loaded in vLLM and answers a prompt."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, ClassVar

from domainllm.capabilities.machine import describe
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)

FULL = "full"


class EvalQuantizedStage(StageDefaults):
    name: ClassVar[str] = "eval_quantized"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("quantize", "mix")

    def config(self, spec: Spec) -> dict[str, Any]:
        evals = spec.evals
        return {"suites": list(spec.quantize.suites), "serve_check": spec.quantize.serve_check, "backend": evals.backend,
                **{s: getattr(evals, s).model_dump(mode="json") for s in spec.quantize.suites}}  # fmt: skip

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.quant.load import evaluable
        from domainllm.stages.evaluate import write_items
        from domainllm.stages.models import local_model

        quantized = ctx.upstream["quantize"].info
        if not quantized.get("enabled"):
            return StageResult(info={"enabled": False})
        done = quantized["variants"]  # in the spec's order
        variants = {v.name: done[v.name] for v in ctx.spec.quantize.variants if done.get(v.name, {}).get("status") == "ok"}
        suites = self._suites(ctx.spec)
        rows: list[dict] = []
        unscored: dict[str, str] = {}
        with local_model(quantized["source"]) as full:
            for role, location in [(FULL, None), *((n, v["registered"]["path"]) for n, v in variants.items())]:
                start = time.monotonic()
                try:
                    with local_model(location or full) as folder, evaluable(folder, full) as path:
                        rows.extend(row for suite in suites for row in suite.rows(ctx, role, path))
                except Exception as exc:  # a variant this machine cannot load or run is recorded; the full model must run
                    if role == FULL:
                        raise
                    unscored[role] = f"{type(exc).__name__}: {str(exc)[:300]}"
                    log.warning("eval_quantized: %s could not be evaluated here: %s", role, unscored[role])
                    continue
                log.info("eval_quantized: %s evaluated in %.0f s", role, time.monotonic() - start)
        variants = {n: v for n, v in variants.items() if n not in unscored}
        counts, metrics = write_items(ctx, rows, FULL)
        roles = [FULL, *variants]
        costs, text = self._report(ctx, rows, roles)
        checks = self._serve_checks(ctx, variants) if ctx.spec.quantize.serve_check else {}
        self._write_report(ctx, text + (self._checks_text(checks) if checks else ""), checks)
        self._tag_versions(variants, metrics, costs, checks)
        counts.update({"unscored": len(unscored), "servable": sum(c["status"] == "ok" for c in checks.values()),
                       "not_servable": sum(c["status"] == "failed" for c in checks.values())})  # fmt: skip
        return StageResult(counts=counts,
                           metrics={**metrics, **{f"{v}.{m}.cost": c["mean"] for (v, m), c in costs.items()}},
                           info={"enabled": True, "roles": roles, "serve_checks": checks, "unscored": unscored,
                                 "items_file": "items.parquet"},
                           reports=["quantized.md", "quantized.png"])  # fmt: skip

    def _suites(self, spec: Spec) -> list[Any]:
        from domainllm.stages.evaluate import EvalChoiceStage, EvalCodeStage, EvalPerplexityStage

        known = {"perplexity": EvalPerplexityStage(), "choice": EvalChoiceStage(), "code": EvalCodeStage()}
        chosen = [known[s] for s in spec.quantize.suites if getattr(spec.evals, s).enabled]
        if not chosen:
            raise StageError("quantize.suites: every suite named is turned off in `evals`; name one that runs")
        return chosen

    def _report(self, ctx: StageContext, rows: list[dict], roles: list[str]) -> tuple[dict[tuple[str, str], dict[str, float]], str]:
        """The comparison (means per variant, and each variant's difference from the full model
        with its 95% paired-bootstrap interval): those differences and the report's text; the
        plot is written."""
        from domainllm.evals.gate import paired
        from domainllm.evals.report import plot, table
        from domainllm.evals.stats import paired_bootstrap

        by: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for r in rows:
            by[r["metric"]][r["role"]][r["item_id"]] = r["score"]
        scores, _ = paired(by, reference=FULL)
        costs: dict[tuple[str, str], dict[str, float]] = {}
        lines = ["", "Cost of each quantization: variant - full, mean over the items [95% paired-bootstrap interval]", "",
                 "| metric | " + " | ".join(roles[1:]) + " |", "|---|" + "---|" * len(roles[1:])]  # fmt: skip
        for metric, by_role in scores.items():
            cells = []
            for variant in roles[1:]:
                d = paired_bootstrap(by_role[variant], by_role[FULL])
                costs[(variant, metric)] = {"mean": d.mean, "low": d.low, "high": d.high}
                cells.append(f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
            lines.append(f"| {metric} | " + " | ".join(cells) + " |")
        text = table(scores, roles) + "\n".join(lines) + "\n"
        log.info("eval_quantized: full precision vs quantized variants (per-item means)\n%s", text)
        png = plot(scores, roles)
        with ctx.out.fs.open(ctx.out.file("quantized.png"), "wb") as fh:
            fh.write(png)
        return costs, text

    def _write_report(self, ctx: StageContext, text: str, checks: dict[str, dict[str, Any]]) -> None:
        import mlflow

        with ctx.out.fs.open(ctx.out.file("quantized.md"), "w") as fh:
            fh.write(text)
        mlflow.log_text(text, "quantized.md")
        for name, c in checks.items():
            mlflow.set_tag(f"domainllm.servable.{name}", c["servable"])
        if checks:
            mlflow.log_dict(checks, "serve_checks.json")

    def _serve_checks(self, ctx: StageContext, variants: dict[str, dict]) -> dict[str, dict[str, Any]]:
        """Whether this machine's vLLM serves each compressed-tensors variant: a probe each
        (tried in a child process, cached per machine). A variant it cannot serve is recorded
        as not servable with the evidence; the stage goes on."""
        from domainllm.quant.formats import served_by_vllm
        from domainllm.serve.check import serve_check
        from domainllm.stages.models import local_model

        checks: dict[str, dict[str, Any]] = {}
        for name, v in variants.items():
            setting = next(s.model_dump() for s in ctx.spec.quantize.variants if s.name == name)
            if not served_by_vllm(setting):
                continue
            with local_model(v["registered"]["path"]) as path:
                record = serve_check(path, ctx.spec.serving)
            checks[name] = _check_summary(record)
            say = log.info if record["status"] == "ok" else log.warning
            say("eval_quantized: vLLM %s %s here%s%s", "serves" if record["status"] == "ok" else "does not serve", name,
                " (cached probe)" if record.get("cached") else "", f": {record.get('reason')}" if record.get("reason") else "")  # fmt: skip
        return checks

    def _checks_text(self, checks: dict[str, dict[str, Any]]) -> str:
        lines = ["", f"Served by vLLM on this machine ({describe()}):", "", "| variant | servable | seconds | reason |",
                 "|---|---|---|---|"]  # fmt: skip
        for name, c in checks.items():
            reason = (c.get("reason") or "").replace("|", "/").replace("\n", " ")[:300]
            cached = " (cached)" if c.get("cached") else ""
            lines.append(f"| {name} | {c['servable']}{cached} | {c.get('seconds', '-')} | {reason} |")
        text = "\n".join(lines) + "\n"
        log.info("eval_quantized: %s", text)
        return text

    def _tag_versions(self, variants: dict[str, dict], metrics: dict[str, float], costs: dict, checks: dict) -> None:
        """Each registered variant version carries its scores and costs, beside its lineage,
        and whether vLLM served it on the machine that checked (with the reason when not)."""
        import mlflow

        client = mlflow.MlflowClient()
        for name, v in variants.items():
            reg = v["registered"]
            if name in checks:
                client.set_model_version_tag(reg["name"], reg["version"], "domainllm.servable", SERVABLE[checks[name]["status"]])
                client.set_model_version_tag(reg["name"], reg["version"], "domainllm.servable.machine", describe()[:250])
                if checks[name].get("reason"):
                    client.set_model_version_tag(reg["name"], reg["version"], "domainllm.servable.reason", checks[name]["reason"][:500])
            for key, value in metrics.items():
                if key.startswith(f"{name}."):
                    client.set_model_version_tag(reg["name"], reg["version"], f"domainllm.eval.{key[len(name) + 1:]}", f"{value:.6g}")
            for (variant, metric), c in costs.items():
                if variant == name:
                    client.set_model_version_tag(reg["name"], reg["version"], f"domainllm.cost.{metric}", f"{c['mean']:+.6g}")


SERVABLE = {"ok": "yes", "failed": "no", "skipped": "unknown"}


def _check_summary(record: dict[str, Any]) -> dict[str, Any]:
    """A probe record as the manifest keeps it: the outcome, the evidence with a short log tail."""
    evidence = dict(record.get("evidence") or {})
    if "log_tail" in evidence:
        evidence["log_tail"] = "\n".join(evidence["log_tail"].splitlines()[-20:])
    return {"status": record["status"], "servable": SERVABLE[record["status"]], "reason": record.get("reason", ""),
            "seconds": record.get("seconds"), "cached": record.get("cached", False), "probed_at": record.get("probed_at"),
            "evidence": evidence}  # fmt: skip
