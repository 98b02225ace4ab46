"""Stages `eval_perplexity`, `eval_code`, `eval_choice`: one suite each, run on the candidate
(the last training stage's model), the champion (the registry's `champion` alias, when there
is one) and the base. Per-item rows go to `items.parquet` for the gate; per-role means to
the manifest and MLflow (`<role>.<metric>`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from typing import Any, ClassVar

import pyarrow as pa

from domainllm.data.shards import write_parquet
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.models import local_model

ITEMS_FILE = "items.parquet"


class EvalStage(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("dpo", "base_model", "mix")
    suite: ClassVar[str]

    @abstractmethod
    def suite_config(self, spec: Spec) -> Any: ...

    @abstractmethod
    def rows(self, ctx: StageContext, role: str, model_path: str) -> list[dict]: ...

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        return {self.suite: self.suite_config(spec).model_dump(mode="json"), "backend": spec.evals.backend}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        if not self.suite_config(spec).enabled:
            return {}
        from domainllm.evals.registry import champion

        current = champion(spec)  # a new champion means new comparisons
        return {"champion": f"{current.version}:{current.model_path}" if current else "none"}

    def roles(self, ctx: StageContext) -> dict[str, str]:
        from domainllm.evals.registry import champion

        roles = {"candidate": ctx.upstream["dpo"].info["model_path"], "base": ctx.upstream["base_model"].info["model_path"]}
        current = champion(ctx.spec)
        if current is not None and current.model_path != roles["candidate"]:  # not already promoted
            roles["champion"] = current.model_path
        return roles

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.evals.suites import ITEM_SCHEMA

        if not self.suite_config(ctx.spec).enabled:
            return StageResult(info={"enabled": False})
        roles = self.roles(ctx)
        rows: list[dict] = []
        for role, location in roles.items():
            with local_model(location) as path:
                rows.extend(self.rows(ctx, role, path))
        write_parquet(ctx.out.fs, ctx.out.file(ITEMS_FILE), pa.Table.from_pylist(rows, schema=ITEM_SCHEMA))
        sums: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in rows:
            sums[(r["role"], r["metric"])].append(r["score"])
        metrics = {f"{role}.{metric}": sum(v) / len(v) for (role, metric), v in sums.items()}
        items = {metric: len(v) for (role, metric), v in sums.items() if role == "candidate"}
        return StageResult(counts={"items": len(rows), **{f"items.{m}": n for m, n in items.items()}}, metrics=metrics,
                           info={"enabled": True, "roles": roles, "items_file": ITEMS_FILE})  # fmt: skip


class EvalPerplexityStage(EvalStage):
    name: ClassVar[str] = "eval_perplexity"
    suite: ClassVar[str] = "perplexity"

    def suite_config(self, spec: Spec) -> Any:
        return spec.evals.perplexity

    def rows(self, ctx: StageContext, role: str, model_path: str) -> list[dict]:
        from domainllm.evals.perplexity import mix_heldout
        from domainllm.evals.suites import perplexity_rows
        from domainllm.stages.runner import StageError

        docs = mix_heldout(ctx.layout.fs, ctx.upstream_dir("mix"))
        if not docs:
            raise StageError("evals.perplexity needs held-out documents: set data.mix.heldout_fraction above 0")
        seq_len = ctx.spec.training.cpt.seq_len or ctx.spec.data.pack.seq_len
        return perplexity_rows(role, model_path, docs, seq_len=seq_len, max_tokens=ctx.spec.evals.perplexity.max_tokens)


class EvalCodeStage(EvalStage):
    name: ClassVar[str] = "eval_code"
    suite: ClassVar[str] = "code"

    def suite_config(self, spec: Spec) -> Any:
        return spec.evals.code

    def rows(self, ctx: StageContext, role: str, model_path: str) -> list[dict]:
        from domainllm.evals.sandbox import Limits
        from domainllm.evals.suites import code_rows, load_problems

        cfg = ctx.spec.evals.code
        limits = Limits(wall_s=cfg.wall_s, cpu_s=max(1, int(cfg.wall_s)), memory_mb=cfg.memory_mb)
        return [row for s in cfg.sets for row in code_rows(role, model_path, s.name, _loaded(load_problems, s.path, "evals.code"),
                                                           cfg.decoding, cfg.k, limits)]  # fmt: skip


class EvalChoiceStage(EvalStage):
    name: ClassVar[str] = "eval_choice"
    suite: ClassVar[str] = "choice"

    def suite_config(self, spec: Spec) -> Any:
        return spec.evals.choice

    def rows(self, ctx: StageContext, role: str, model_path: str) -> list[dict]:
        from domainllm.evals.suites import choice_rows, load_choice_items

        cfg = ctx.spec.evals.choice
        return [row for s in cfg.sets
                for row in choice_rows(role, model_path, s.name, _loaded(load_choice_items, s.path, "evals.choice"), cfg.scoring)]  # fmt: skip


def _loaded(loader, path: str, section: str):
    """An eval set, or a StageError that names the spec field and what is wrong with the file."""
    from domainllm.stages.runner import StageError

    try:
        return loader(path)
    except (OSError, ValueError) as exc:
        raise StageError(f"{section}.sets: {exc}") from None
