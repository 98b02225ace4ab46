"""Stages `eval_perplexity`, `eval_code`, `eval_choice`, `eval_judge`: one suite each, run on the candidate
(the last training stage's model), the champion (the registry's `champion` alias, when there
is one) and the base. Per-item rows go to `items.parquet` for the gate; per-role means to
the manifest and MLflow (`<role>.<metric>`)."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from domainllm.data.shards import write_parquet
from domainllm.evals.judge import mean_scored
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.models import local_model

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from domainllm.evals.generate import Generator

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
        config = {self.suite: self.suite_config(spec).model_dump(mode="json"), "backend": spec.evals.backend}
        retrieval = spec.evals.retrieval
        if retrieval.enabled and self.suite in retrieval.suites:
            config["retrieval"] = retrieval.model_dump(mode="json")
        return config

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        if not self.suite_config(spec).enabled:
            return {}
        from domainllm.evals.registry import champion

        current = champion(spec)  # a new champion means new comparisons
        return {"champion": f"{current.version}:{current.model_path}" if current else "none"}

    def roles(self, ctx: StageContext) -> dict[str, str]:
        from domainllm.evals.rag import SUFFIX
        from domainllm.evals.registry import champion, is_champion

        dpo = ctx.upstream["dpo"]
        roles = {"candidate": dpo.info["model_path"], "base": ctx.upstream["base_model"].info["model_path"]}
        if self.with_retrieval(ctx):  # the candidate again, with the knowledge base in its prompts
            roles["candidate" + SUFFIX] = roles["candidate"]
        current = champion(ctx.spec)
        if current is not None and not is_champion(current, dpo.fingerprint, roles["candidate"]):  # not already promoted
            roles["champion"] = current.model_path
        return roles

    def with_retrieval(self, ctx: StageContext) -> bool:
        cfg = ctx.spec.evals.retrieval
        if not cfg.enabled or self.suite not in cfg.suites:
            return False
        if "kb_index" not in ctx.upstream or not ctx.upstream["kb_index"].info.get("enabled"):
            log.info("%s: evals.retrieval is on but the run has no knowledge base (knowledge.enabled); no _rag role", self.name)
            return False
        return True

    def run(self, ctx: StageContext) -> StageResult:
        if not self.suite_config(ctx.spec).enabled:
            return StageResult(info={"enabled": False})
        roles = self.roles(ctx)
        rows: list[dict] = []
        for role, location in roles.items():
            with local_model(location) as path:
                rows.extend(self.rows(ctx, role, path))
        counts, metrics = write_items(ctx, rows, "candidate")
        return StageResult(counts=counts, metrics=metrics, info={"enabled": True, "roles": roles, "items_file": ITEMS_FILE})


def write_items(ctx: StageContext, rows: list[dict], counted_role: str) -> tuple[dict[str, int], dict[str, float]]:
    """Saves the per-item rows as `items.parquet`; returns the counts (items per metric of
    `counted_role`) and the per-role means (`<role>.<metric>`) for the manifest and MLflow."""
    from domainllm.evals.suites import ITEM_SCHEMA

    write_parquet(ctx.out.fs, ctx.out.file(ITEMS_FILE), pa.Table.from_pylist(rows, schema=ITEM_SCHEMA))
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        sums[(r["role"], r["metric"])].append(r["score"])
    metrics = {f"{role}.{metric}": mean_scored(v) for (role, metric), v in sums.items()}
    items = {metric: len(v) for (role, metric), v in sums.items() if role == counted_role}
    unscored = sum(math.isnan(r["score"]) for r in rows)  # a judge reply that could not be read
    return ({"items": len(rows), "unscored": unscored, **{f"items.{m}": n for m, n in items.items()}},
            {k: v for k, v in metrics.items() if not math.isnan(v)})  # fmt: skip


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
    requires: ClassVar[tuple[str, ...]] = ("dpo", "base_model", "mix", "kb_index")

    def suite_config(self, spec: Spec) -> Any:
        return spec.evals.code

    def rows(self, ctx: StageContext, role: str, model_path: str) -> list[dict]:
        from domainllm.evals.sandbox import HOW_TO_FIX, isolation_problem
        from domainllm.evals.suites import code_rows
        from domainllm.stages.runner import StageError

        cfg = ctx.spec.evals.code
        limits, sets = code_limits(ctx.spec), code_sets(ctx.spec)
        problem = isolation_problem()
        if problem is not None and not cfg.allow_unisolated:  # before any generation is spent
            raise StageError(f"eval_code: generated code runs only isolated, and this machine cannot isolate it: {problem}. "
                             f"To fix: {HOW_TO_FIX}")  # fmt: skip
        if problem is not None:
            log.warning("eval_code: running generated code WITHOUT isolation (evals.code.allow_unisolated): %s", problem)
        with generator_for(ctx, model_path, role) as generate:
            rows = [row for name, problems in sets for row in code_rows(role, generate, name, problems, cfg.decoding, cfg.k, limits)]
        return [{**row, "sandbox": "isolated" if problem is None else "unisolated"} for row in rows]


class EvalChoiceStage(EvalStage):
    name: ClassVar[str] = "eval_choice"
    suite: ClassVar[str] = "choice"

    def suite_config(self, spec: Spec) -> Any:
        return spec.evals.choice

    def rows(self, ctx: StageContext, role: str, model_path: str) -> list[dict]:
        from domainllm.evals.suites import choice_rows, load_choice_items

        cfg = ctx.spec.evals.choice
        return [row for s in cfg.sets
                for row in choice_rows(role, model_path, s.name, loaded(load_choice_items, s.path, "evals.choice.sets"), cfg.scoring)]  # fmt: skip


class EvalJudgeStage(EvalStage):
    """Off unless `evals.judge.endpoint` is set."""

    name: ClassVar[str] = "eval_judge"
    suite: ClassVar[str] = "judge"
    requires: ClassVar[tuple[str, ...]] = ("dpo", "base_model", "mix", "kb_index")

    def suite_config(self, spec: Spec) -> Any:
        return spec.evals.judge

    def run(self, ctx: StageContext) -> StageResult:
        if ctx.spec.evals.judge.enabled:
            self.judge = judge_for(ctx.spec)
        return super().run(ctx)

    def rows(self, ctx: StageContext, role: str, model_path: str) -> list[dict]:
        from domainllm.evals.endpoint import EndpointError
        from domainllm.evals.suites import judge_rows, load_judge_items
        from domainllm.stages.runner import StageError

        cfg = ctx.spec.evals.judge
        items = loaded(load_judge_items, cfg.prompts.path, "evals.judge.prompts")
        with generator_for(ctx, model_path, role) as generate:
            try:
                return judge_rows(role, generate, cfg.prompts.name, items, cfg.decoding, self.judge)
            except EndpointError as exc:
                raise StageError(f"evals.judge: {exc}") from None


class EvalQaStage(EvalStage):
    """Questions with reference answers, scored by token F1 (no judge needed)."""

    name: ClassVar[str] = "eval_qa"
    suite: ClassVar[str] = "qa"
    requires: ClassVar[tuple[str, ...]] = ("dpo", "base_model", "mix", "kb_index")

    def suite_config(self, spec: Spec) -> Any:
        return spec.evals.qa

    def rows(self, ctx: StageContext, role: str, model_path: str) -> list[dict]:
        from domainllm.evals.suites import load_judge_items, qa_rows
        from domainllm.stages.runner import StageError

        cfg = ctx.spec.evals.qa
        with generator_for(ctx, model_path, role) as generate:
            try:
                return [row for s in cfg.sets for row in qa_rows(role, generate, s.name, loaded(load_judge_items, s.path, "evals.qa.sets"), cfg.decoding)]
            except ValueError as exc:
                raise StageError(f"evals.qa.sets: {exc}") from None


def judge_for(spec: Spec, cfg=None, where: str = "evals.judge"):
    """The judge of `evals.judge` (or of `cfg`, a JudgeSuite configured at `where`), its model
    named or the endpoint's first; StageError if unusable."""
    from domainllm.evals.endpoint import EndpointError, describe_error, make_client
    from domainllm.evals.judge import Judge
    from domainllm.stages.runner import StageError

    cfg = cfg or spec.evals.judge
    try:
        client = make_client(cfg.endpoint, cfg.api_key_env)
    except EndpointError as exc:
        raise StageError(f"{where}: {exc}") from None
    model = cfg.model
    if model is None:
        import openai

        try:
            model = next(iter(client.models.list())).id
        except openai.OpenAIError as exc:
            raise StageError(f"{where}: {describe_error(exc, cfg.endpoint)}") from None
        except StopIteration:
            raise StageError(f"{where}: {cfg.endpoint} serves no model; set {where}.model") from None
    log.info("judge: %s at %s, rubric %s", model, cfg.endpoint, ", ".join(cfg.rubric))
    return Judge(client, model, cfg.rubric, structured=cfg.structured)


@contextmanager
def generator_for(ctx: StageContext, model_path: str, role: str = "") -> Iterator[Generator]:
    """The spec's generation backend for one model; a backend that cannot run is a StageError.
    For a `_rag` role, each prompt gets the run's knowledge base chunks first."""
    from domainllm.evals.backends import BackendUnavailable, open_generator
    from domainllm.evals.endpoint import EndpointError
    from domainllm.evals.rag import SUFFIX, RetrievingGenerator, augmenter_for
    from domainllm.serve.vllm_server import ServerError
    from domainllm.stages.runner import StageError

    try:
        with open_generator(ctx.spec.evals.backend, model_path) as generate:
            if role.endswith(SUFFIX):
                policy = ctx.spec.evals.retrieval.policy.model_dump(mode="json")
                generate = RetrievingGenerator(generate, augmenter_for(ctx.upstream["kb_index"].info, policy))
            yield generate
    except (BackendUnavailable, EndpointError, ServerError) as exc:
        raise StageError(f"evals.backend {ctx.spec.evals.backend}: {exc}") from None


def code_limits(spec: Spec):
    from domainllm.evals.sandbox import Limits

    cfg = spec.evals.code
    return Limits(wall_s=cfg.wall_s, cpu_s=max(1, int(cfg.wall_s)), memory_mb=cfg.memory_mb, allow_unisolated=cfg.allow_unisolated)


def code_sets(spec: Spec) -> list[tuple[str, list]]:
    from domainllm.evals.suites import load_problems

    return [(s.name, loaded(load_problems, s.path, "evals.code.sets")) for s in spec.evals.code.sets]


def loaded(loader, path: str, field: str):
    """An eval set, or a StageError that names the spec field and what is wrong with the file."""
    from domainllm.stages.runner import StageError

    try:
        return loader(path)
    except (OSError, ValueError) as exc:
        raise StageError(f"{field}: {exc}") from None
