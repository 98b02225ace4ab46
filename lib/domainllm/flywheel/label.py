"""Label candidates and build preference pairs.

Each candidate answer of a prompt gets a score from 0 to 1, from the best source there is:
1. **feedback**: the user's thumbs up (1) or down (0) on the answer they were served. A
   better answer a user wrote (`preferred`) is a candidate like any other, scored by the
   judge or the rules: text from a stranger is never trusted to be the better one;
2. **judge**: the mean rubric grade of a judge model behind an OpenAI-compatible endpoint,
   scaled from 1-5 to 0-1 (unreadable replies leave the candidate to the rules);
3. **rules**: 0 for an empty answer, else the share of checks passed: no repetition loop,
   not cut off at the token limit (when every candidate says why it ended), and its fenced
   code compiles (Python with `compile`, Perl with `perl -c`
   in the sandbox: `perl -c` runs BEGIN blocks).

Per prompt, the best and the worst candidate form a pair when their scores differ by at least
`flywheel.label.min_margin` (empty answers are never paired: there is nothing to learn
from them that DPO could use); the pair's label source is the weaker of its two ends' sources
(feedback > judge > rules)."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections import Counter
from typing import Any

from domainllm.spec.flywheel import LabelConfig

log = logging.getLogger(__name__)

RANK = {"feedback": 0, "judge": 1, "rules": 2}
FENCE = re.compile(r"```([A-Za-z0-9_+-]*)\n(.*?)```", re.S)


def repetitive(text: str, n: int = 4, max_share: float = 0.5) -> bool:
    """Whether most of the word n-grams of `text` repeat (a model stuck in a loop)."""
    words = text.split()
    if len(words) < 4 * n:
        return False
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) > max_share


def code_compiles(text: str, allow_unisolated: bool = False) -> bool | None:
    """None without fenced code (or for a language not checked); else whether every block
    compiles. Perl is checked in the sandbox only (SandboxUnavailable where this machine
    cannot isolate, unless `allow_unisolated`)."""
    results = []
    for lang, code in FENCE.findall(text):
        lang = lang.lower()
        if lang in ("python", "py", "python3"):
            try:
                compile(code, "<answer>", "exec")
                results.append(True)
            except (SyntaxError, ValueError):
                results.append(False)
        elif lang in ("perl", "pl") and shutil.which("perl"):
            from domainllm.evals.sandbox import Limits, run_sandboxed

            outcome = run_sandboxed(["perl", "-c", "answer.pl"], {"answer.pl": code},
                                    Limits(wall_s=5, cpu_s=5, allow_unisolated=allow_unisolated))  # fmt: skip
            results.append(outcome.passed)
    return all(results) if results else None


def rule_score(candidate: dict[str, Any], *, finish_known: bool = True, allow_unisolated: bool = False) -> float:
    """`finish_known`: whether every candidate of the prompt says why it ended (the served
    answer does, sampled ones do not): a check only some candidates can fail is not fair."""
    text = candidate["text"] or ""
    if not text.strip():
        return 0.0
    checks = [not repetitive(text)]
    if finish_known:
        checks.append(candidate.get("finish_reason") != "length")
    compiled = code_compiles(text, allow_unisolated)
    if compiled is not None:
        checks.append(compiled)
    return sum(checks) / len(checks)


def feedback_scores(row: dict[str, Any]) -> None:
    """Scores from the user's rating of the answer they were served (a preferred answer they
    wrote gets none: the judge or the rules score it)."""
    for c in row["candidates"]:
        if c["origin"] == "served" and row.get("rating") in ("up", "down"):
            c["score"], c["label"] = (1.0 if row["rating"] == "up" else 0.0), "feedback"


def judge_scores(rows: list[dict[str, Any]], judge) -> int:
    """Grades every candidate not labelled by feedback; returns how many replies were unreadable."""
    from domainllm.evals.judge import JudgeItem

    todo = [(row, c) for row in rows for c in row["candidates"] if "score" not in c]
    items = [JudgeItem(row["request_id"], row["prompt"]) for row, _ in todo]
    graded = judge.grade_all(items, [c["text"] for _, c in todo])
    unreadable = 0
    for (_, c), (scores, _error) in zip(todo, graded, strict=True):
        if scores is None:
            unreadable += 1
            continue
        c["score"], c["label"] = (sum(scores.values()) / len(scores) - 1) / 4, "judge"
    return unreadable


def pair_id(prompt: list[dict], chosen: str, rejected: str) -> str:
    h = hashlib.sha256()
    for part in (repr(prompt), chosen, rejected):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def build_pairs(rows: list[dict[str, Any]], cfg: LabelConfig) -> tuple[list[dict[str, Any]], Counter]:
    counts: Counter = Counter()
    pairs = []
    for row in rows:
        scored = sorted((c for c in row["candidates"] if "score" in c and (c["text"] or "").strip()), key=lambda c: -c["score"])
        distinct = {c["text"].strip() for c in scored}
        if len(distinct) < 2:
            counts["no_pair.too_few_candidates"] += 1
            continue
        made = 0
        used: set[str] = set()
        for best in scored:
            for worst in reversed(scored):
                if made >= cfg.max_pairs_per_prompt:
                    break
                margin = best["score"] - worst["score"]
                if margin < cfg.min_margin or best["text"].strip() == worst["text"].strip() or worst["text"] in used:
                    continue
                source = max(best["label"], worst["label"], key=RANK.__getitem__)
                pairs.append({
                    "id": pair_id(row["prompt"], best["text"], worst["text"]), "prompt": row["prompt"],
                    "chosen": [{"role": "assistant", "content": best["text"]}],
                    "rejected": [{"role": "assistant", "content": worst["text"]}],
                    "margin": float(margin), "label_source": source, "chosen_model": best["model"],
                    "rejected_model": worst["model"], "request_id": row["request_id"], "prompt_hash": row["prompt_hash"],
                    "principal": row.get("principal"),
                })  # fmt: skip
                counts[f"pairs.{source}"] += 1
                used.add(worst["text"])
                made += 1
        if not made:
            counts["no_pair.below_margin"] += 1
    counts["pairs"] = len(pairs)
    return pairs, counts


def label(rows: list[dict[str, Any]], cfg: LabelConfig, judge=None) -> tuple[list[dict[str, Any]], Counter]:
    """Scores every candidate (feedback, then judge, then rules) and builds the pairs."""
    counts: Counter = Counter()
    for row in rows:
        feedback_scores(row)
    if judge is not None:
        counts["judge_unreadable"] = judge_scores(rows, judge)
    for row in rows:
        finish_known = all(c.get("finish_reason") is not None for c in row["candidates"] if c["origin"] != "feedback")
        for c in row["candidates"]:
            if "score" not in c:
                c["score"], c["label"] = rule_score(c, finish_known=finish_known, allow_unisolated=cfg.allow_unisolated), "rules"
            counts[f"scored.{c['label']}"] += 1
    pairs, pair_counts = build_pairs(rows, cfg)
    counts.update(pair_counts)
    return pairs, counts
