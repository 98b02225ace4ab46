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
        with local_model(quantized["source"]) as full:
            for role, location in [(FULL, None), *((n, v["registered"]["path"]) for n, v in variants.items())]:
                start = time.monotonic()
                with local_model(location or full) as folder, evaluable(folder, full) as path:
                    for suite in suites:
                        rows.extend(suite.rows(ctx, role, path))
                log.info("eval_quantized: %s evaluated in %.0f s", role, time.monotonic() - start)
        counts, metrics = write_items(ctx, rows, FULL)
        roles = [FULL, *variants]
        costs = self._report(ctx, rows, roles)
        checks = self._serve_checks(ctx, variants) if ctx.spec.quantize.serve_check else {}
        self._tag_versions(variants, metrics, costs)
        return StageResult(counts=counts,
                           metrics={**metrics, **{f"{v}.{m}.cost": c["mean"] for (v, m), c in costs.items()}},
                           info={"enabled": True, "roles": roles, "serve_checks": checks, "items_file": "items.parquet"},
                           reports=["quantized.md", "quantized.png"])  # fmt: skip

    def _suites(self, spec: Spec) -> list[Any]:
        from domainllm.stages.evaluate import EvalChoiceStage, EvalCodeStage, EvalPerplexityStage

        known = {"perplexity": EvalPerplexityStage(), "choice": EvalChoiceStage(), "code": EvalCodeStage()}
        chosen = [known[s] for s in spec.quantize.suites if getattr(spec.evals, s).enabled]
        if not chosen:
            raise StageError("quantize.suites: every suite named is turned off in `evals`; name one that runs")
        return chosen

    def _report(self, ctx: StageContext, rows: list[dict], roles: list[str]) -> dict[tuple[str, str], dict[str, float]]:
        """Writes the comparison (means per variant, and each variant's difference from the full
        model with its 95% paired-bootstrap interval); returns those differences."""
        import mlflow

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
        with ctx.out.fs.open(ctx.out.file("quantized.md"), "w") as fh:
            fh.write(text)
        with ctx.out.fs.open(ctx.out.file("quantized.png"), "wb") as fh:
            fh.write(png)
        mlflow.log_text(text, "quantized.md")
        return costs

    def _serve_checks(self, ctx: StageContext, variants: dict[str, dict]) -> dict[str, dict[str, Any]]:
        """Loads each compressed-tensors variant in vLLM and asks it one prompt."""
        from domainllm.quant.capabilities import served_by_vllm, vllm_cpu_serves
        from domainllm.serve.vllm_server import vllm_python

        checks: dict[str, dict[str, Any]] = {}
        gpu = _has_gpu()
        for name, v in variants.items():
            setting = next(s.model_dump() for s in ctx.spec.quantize.variants if s.name == name)
            if not served_by_vllm(setting):
                continue
            reason = None if gpu else vllm_cpu_serves(setting)
            if reason is None and vllm_python() is None:
                reason = "no vLLM environment here (`make serve-env`)"
            if reason:
                log.info("eval_quantized: vLLM check of %s skipped: %s", name, reason)
                checks[name] = {"status": "skipped", "reason": reason}
                continue
            checks[name] = _serve_once(ctx.spec, v["registered"]["path"])
            log.info("eval_quantized: vLLM check of %s: %s", name, checks[name])
            if checks[name]["status"] != "ok":
                raise StageError(f"quantize: vLLM could not serve {name}: {checks[name]['reason']}")
        return checks

    def _tag_versions(self, variants: dict[str, dict], metrics: dict[str, float], costs: dict) -> None:
        """Each registered variant version carries its scores and costs, beside its lineage."""
        import mlflow

        client = mlflow.MlflowClient()
        for name, v in variants.items():
            reg = v["registered"]
            for key, value in metrics.items():
                if key.startswith(f"{name}."):
                    client.set_model_version_tag(reg["name"], reg["version"], f"domainllm.eval.{key[len(name) + 1:]}", f"{value:.6g}")
            for (variant, metric), c in costs.items():
                if variant == name:
                    client.set_model_version_tag(reg["name"], reg["version"], f"domainllm.cost.{metric}", f"{c['mean']:+.6g}")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _serve_once(spec: Spec, location: str) -> dict[str, Any]:
    from domainllm.evals.endpoint import make_client
    from domainllm.serve.settings import vllm_args, vllm_env
    from domainllm.serve.vllm_server import ServerError, VllmServer
    from domainllm.stages.models import local_model

    start = time.monotonic()
    try:
        # eager: the check is whether vLLM's kernels load and run the variant, not how fast; compiling costs ~30 s
        with local_model(location) as path, VllmServer(path, served_name="check", extra_args=[*vllm_args(spec.serving), "--enforce-eager"],
                                                       env=vllm_env(spec.serving),
                                                       start_timeout_s=spec.serving.start_timeout_s) as server:  # fmt: skip
            reply = make_client(server.base_url).completions.create(model="check", prompt="Hello", max_tokens=8, temperature=0)
            text = reply.choices[0].text
    except ServerError as exc:
        return {"status": "failed", "reason": str(exc)[-2000:]}
    return {"status": "ok", "seconds": round(time.monotonic() - start, 1), "tokens": reply.usage.completion_tokens if reply.usage else len(text)}
