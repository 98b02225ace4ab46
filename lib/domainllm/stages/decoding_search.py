"""Stage `decoding_search` (off unless `evals.decoding_search.enabled`): scores the candidate
with one suite (code: mean pass@k over every set; judge: mean score over criteria) at the
spec's fixed decoding and at every grid point, and reports the best as a table (task log,
`search.md`), a plot (`search.png`), `search.parquet` and MLflow metrics. It changes nothing:
the suites keep their fixed decoding, so gate comparisons stay like for like."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, ClassVar

import pyarrow as pa

from domainllm.data.shards import write_parquet
from domainllm.spec import Spec
from domainllm.spec.evals import Decoding
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.models import local_model

log = logging.getLogger(__name__)


class DecodingSearchStage:
    name: ClassVar[str] = "decoding_search"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("dpo",)

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        cfg = spec.evals.decoding_search
        suite = spec.evals.code if cfg.suite == "code" else spec.evals.judge
        return {"decoding_search": cfg.model_dump(mode="json"), cfg.suite: suite.model_dump(mode="json"), "backend": spec.evals.backend}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.evals import search
        from domainllm.stages.evaluate import generator_for

        cfg = ctx.spec.evals.decoding_search
        if not cfg.enabled:
            return StageResult(info={"enabled": False})
        base = (ctx.spec.evals.code if cfg.suite == "code" else ctx.spec.evals.judge).decoding
        points = [("spec", base), *((f"#{i}", d) for i, d in enumerate(cfg.combinations(base), start=1))]
        objective, score = self._objective(ctx)
        trials: list[search.Trial] = []
        with local_model(ctx.upstream["dpo"].info["model_path"]) as path, generator_for(ctx, path) as generate:
            for label, decoding in points:
                t0 = time.monotonic()
                value, items = score(generate, decoding)
                trials.append(search.Trial(label, decoding, value, items, time.monotonic() - t0))
                log.info("decoding search %d/%d %s: %s = %.4f (%.0fs)", len(trials), len(points), label, objective, value,
                         trials[-1].seconds)  # fmt: skip
        top, spec_trial = search.best(trials), trials[0]
        text = search.table(trials, objective)
        log.info("decoding search on the candidate (%s)\n%s\nbest: %s %s = %.4f (the spec's decoding: %.4f)", cfg.suite, text,
                 top.label, objective, top.score, spec_trial.score)  # fmt: skip
        self._write(ctx, trials, text, search.plot(trials, objective))
        return StageResult(counts={"trials": len(trials)},
                           metrics={"search.best": top.score, "search.spec": spec_trial.score},
                           info={"enabled": True, "suite": cfg.suite, "objective": objective, "best_trial": top.label,
                                 "best": top.decoding.model_dump(mode="json")},
                           reports=["search.md", "search.png"])  # fmt: skip

    def _objective(self, ctx: StageContext):
        """(name, score(generate, decoding) -> (mean, items)) for the searched suite."""
        from domainllm.evals.judge import mean_scored
        from domainllm.stages.evaluate import code_limits, code_sets, judge_for, loaded

        cfg = ctx.spec.evals.decoding_search
        if cfg.suite == "code":
            from domainllm.evals.suites import code_rows

            sets, limits = code_sets(ctx.spec), code_limits(ctx.spec)

            def code(generate, decoding: Decoding) -> tuple[float, int]:
                rows = [r for name, problems in sets for r in code_rows("candidate", generate, name, problems, decoding, (cfg.k,), limits)]
                return sum(r["score"] for r in rows) / len(rows), len(rows)

            return f"pass@{cfg.k}", code
        from domainllm.evals.suites import judge_rows, load_judge_items

        judge_cfg = ctx.spec.evals.judge
        judge = judge_for(ctx.spec)
        items = loaded(load_judge_items, judge_cfg.prompts.path, "evals.judge.prompts")

        def judged(generate, decoding: Decoding) -> tuple[float, int]:
            rows = judge_rows("candidate", generate, judge_cfg.prompts.name, items, decoding, judge)
            return mean_scored([r["score"] for r in rows]), len(items)

        return "judge mean", judged

    def _write(self, ctx: StageContext, trials, text: str, png: bytes) -> None:
        rows = [{"trial": t.label, "decoding": json.dumps(t.decoding.model_dump(mode="json"), sort_keys=True), "score": t.score,
                 "items": t.items, "seconds": t.seconds} for t in trials]  # fmt: skip
        write_parquet(ctx.out.fs, ctx.out.file("search.parquet"), pa.Table.from_pylist(rows))
        with ctx.out.fs.open(ctx.out.file("search.md"), "w") as fh:
            fh.write(text)
        with ctx.out.fs.open(ctx.out.file("search.png"), "wb") as fh:
            fh.write(png)
