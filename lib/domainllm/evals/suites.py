"""Each suite as per-item rows for one model: `{role, suite, set, item_id, metric, score,
detail}`. The gate compares the same items across models; the stages save the rows as
Parquet and their means in MLflow.

- perplexity: one item per context window of the held-out documents, `perplexity.<group>.loss`
- code: one item per problem, `code.<set>.pass_at_<k>` (unbiased estimator over `decoding.n` samples
  checked in the sandbox)
- choice: one item per question, `choice.<set>.correct` (0 or 1, by log-likelihood)
- judge: one item per prompt and criterion, `judge.<criterion>` (1-5; NaN when the judge's
  reply could not be read, with the reason)
- qa: one item per question with a reference answer, `qa.<set>.f1` (token F1, no judge)
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files

import pyarrow as pa

from domainllm.evals.choice import ChoiceItem, parse_items, score_items
from domainllm.evals.generate import Generator
from domainllm.evals.judge import Judge, JudgeItem, read_items
from domainllm.evals.passk import pass_at_k
from domainllm.evals.problems import Problem, humaneval_problems, read_problems
from domainllm.evals.sandbox import Limits
from domainllm.spec.evals import Decoding

log = logging.getLogger(__name__)

ITEM_SCHEMA = pa.schema([("role", pa.string()), ("suite", pa.string()), ("set", pa.string()), ("item_id", pa.string()),
                         ("metric", pa.string()), ("score", pa.float64()), ("detail", pa.string())])  # fmt: skip
BUILTIN = "builtin:"


def builtin_path(name: str) -> str:
    path = files("domainllm.evals") / "sets" / f"{name}.jsonl"
    if not path.is_file():
        shipped = sorted(p.name.removesuffix(".jsonl") for p in (files("domainllm.evals") / "sets").iterdir())
        raise FileNotFoundError(f"no built-in eval set {name!r}; shipped: {', '.join(['humaneval', *shipped])}")
    return str(path)


def load_problems(path: str) -> list[Problem]:
    if path == f"{BUILTIN}humaneval":
        return humaneval_problems()
    return read_problems(builtin_path(path[len(BUILTIN) :]) if path.startswith(BUILTIN) else path)


def load_choice_items(path: str) -> list[ChoiceItem]:
    import fsspec

    real = builtin_path(path[len(BUILTIN) :]) if path.startswith(BUILTIN) else path
    with fsspec.open(real, "rt", encoding="utf-8", compression="infer") as fh:
        return parse_items(fh.read(), real.rsplit("/", 1)[-1])


def load_judge_items(path: str) -> list[JudgeItem]:
    import fsspec

    real = builtin_path(path[len(BUILTIN) :]) if path.startswith(BUILTIN) else path
    with fsspec.open(real, "rt", encoding="utf-8", compression="infer") as fh:
        return read_items(fh.read(), real.rsplit("/", 1)[-1])


def _row(role: str, suite: str, set_name: str, item_id: str, metric: str, score: float, **detail) -> dict:
    return {"role": role, "suite": suite, "set": set_name, "item_id": item_id, "metric": metric, "score": float(score),
            "detail": json.dumps(detail, sort_keys=True, ensure_ascii=False)}  # fmt: skip


def perplexity_rows(role: str, model_path: str, docs: list[tuple[str, str]], *, seq_len: int, max_tokens: int) -> list[dict]:
    from domainllm.evals.perplexity import window_losses

    return [_row(role, "perplexity", w.group, f"{w.group}:{w.index}", f"perplexity.{w.group}.loss", w.loss, tokens=w.tokens)
            for w in window_losses(model_path, docs, seq_len=seq_len, max_tokens=max_tokens)]  # fmt: skip


def code_rows(role: str, generate: Generator, set_name: str, problems: list[Problem], decoding: Decoding, ks: tuple[int, ...],
              limits: Limits, *, workers: int = 4) -> list[dict]:  # fmt: skip
    completions = generate([p.prompt for p in problems], decoding)
    jobs = [(p, c) for p, cs in zip(problems, completions, strict=True) for c in cs]
    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(lambda pc: pc[0].check(pc[1], limits), jobs))
    rows, i = [], 0
    for p, cs in zip(problems, completions, strict=True):
        results = outcomes[i : i + len(cs)]
        i += len(cs)
        correct = sum(o.passed for o in results)
        failure = next((o for o in results if not o.passed), None)
        for k in ks:
            (score,) = pass_at_k([len(cs)], [correct], k)
            rows.append(_row(role, "code", set_name, p.id, f"code.{set_name}.pass_at_{k}", score, samples=len(cs), correct=correct,
                             timed_out=sum(o.timed_out for o in results), backend=generate.name, decoding=decoding.model_dump(mode="json"),
                             failure=(failure.stderr[-300:] if failure else None)))  # fmt: skip
    log.info("code %s/%s: %d of %d samples passed", role, set_name, sum(o.passed for o in outcomes), len(outcomes))
    return rows


def choice_rows(role: str, model_path: str, set_name: str, items: list[ChoiceItem], scoring: str) -> list[dict]:
    from domainllm.evals.models import load_for_eval

    model, tok, _ = load_for_eval(model_path)
    results = score_items(model, tok, items, scoring)  # type: ignore[arg-type]
    return [_row(role, "choice", set_name, r.id, f"choice.{set_name}.correct", float(r.correct), predicted=r.predicted,
                 answer=r.answer) for r in results]  # fmt: skip


def judge_rows(role: str, generate: Generator, set_name: str, items: list[JudgeItem], decoding: Decoding, judge: Judge) -> list[dict]:
    answers = [c[0] for c in generate([i.messages for i in items], decoding)]
    graded = judge.grade_all(items, answers)
    rows = []
    for item, answer, (scores, error) in zip(items, answers, graded, strict=True):
        for c in judge.rubric:
            rows.append(_row(role, "judge", set_name, item.id, f"judge.{c}", scores[c] if scores else math.nan, error=error,
                             answer=answer[:2000], backend=generate.name, decoding=decoding.model_dump(mode="json")))  # fmt: skip
    unscored = sum(s is None for s, _ in graded)
    log.info("judge %s/%s: %d answers graded, %d unscored", role, set_name, len(items) - unscored, unscored)
    return rows


def qa_rows(role: str, generate: Generator, set_name: str, items: list[JudgeItem], decoding: Decoding) -> list[dict]:
    from domainllm.evals.qa import token_f1

    missing = [i.id for i in items if not i.reference]
    if missing:
        raise ValueError(f"{set_name}: every question needs a `reference` answer (missing for {missing[:5]})")
    answers = [c[0] for c in generate([i.messages for i in items], decoding)]
    return [_row(role, "qa", set_name, item.id, f"qa.{set_name}.f1", token_f1(answer, item.reference or ""), answer=answer[:2000],
                 backend=generate.name, decoding=decoding.model_dump(mode="json")) for item, answer in zip(items, answers, strict=True)]  # fmt: skip
