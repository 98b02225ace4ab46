"""What users (and a judge) said about each version's answers during a canary step, read from
the gateway's request log: the log every replica writes to the shared volume or the object
store, so it covers all of them, and it knows who voted.

Votes are read as the flywheel's harvest reads them: only users' answered requests, the first
vote of the answer's receiver, per-user daily caps, and flagged users' votes dropped when the
harvest excludes them. On top, one user counts at most `max_votes_per_principal` votes per
version and step: the gateway tells every client which version answered (`x-model-version`),
so a single key must not be able to sink a canary, or carry it."""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections import defaultdict

from domainllm.serve.canary import Quality, VersionQuality
from domainllm.spec.flywheel import HarvestConfig
from domainllm.spec.serving import RolloutConfig

log = logging.getLogger(__name__)


def step_quality(log_root: str, since: float, *, canary: str, stable: str, cfg: RolloutConfig, harvest_cfg: HarvestConfig,
                 judge=None, now: float | None = None, rng: random.Random | None = None) -> Quality:  # fmt: skip
    """Votes and judge scores of the `canary` and `stable` versions' answers given since `since`."""
    from domainllm.flywheel.harvest import harvest
    from domainllm.flywheel.window import Window

    end = dt.datetime.fromtimestamp((now or dt.datetime.now(dt.UTC).timestamp()) + 1, dt.UTC)
    result = harvest(log_root, Window(dt.datetime.fromtimestamp(since, dt.UTC), end), cfg=harvest_cfg, now=end)
    by_version: dict[str, list[dict]] = defaultdict(list)
    for row in result.rows:
        by_version[row["version"]].append(row)
    rng = rng or random.Random(0)
    return Quality(_version(by_version[canary], cfg, judge, rng), _version(by_version[stable], cfg, judge, rng))


def _version(rows: list[dict], cfg: RolloutConfig, judge, rng: random.Random) -> VersionQuality:
    taken: dict[str, int] = defaultdict(int)
    votes = downs = 0
    for row in sorted(rows, key=lambda r: r["received_at"]):
        if row["rating"] not in ("up", "down") or taken[row["principal"]] >= cfg.max_votes_per_principal:
            continue
        taken[row["principal"]] += 1
        votes += 1
        downs += row["rating"] == "down"
    quality = VersionQuality(votes=votes, downs=downs, principals=len(taken))
    if judge is None or not cfg.judge_sample or not rows:
        return quality
    judged, mean = _judge(judge, rng.sample(rows, min(cfg.judge_sample, len(rows))))
    return VersionQuality(votes=votes, downs=downs, principals=len(taken), judged=judged, judge_mean=mean)


def _judge(judge, rows: list[dict]) -> tuple[int, float | None]:
    """(answers scored, their mean score in 0-1: each criterion's 1-5 mapped to 0-1, averaged)."""
    from domainllm.evals.judge import JudgeItem

    items = [JudgeItem(row["request_id"], row["prompt"]) for row in rows]
    graded = judge.grade_all(items, [row["answer"] for row in rows])
    scores = [sum((v - 1) / 4 for v in s.values()) / len(s) for s, _ in graded if s]
    if len(scores) < len(graded):
        log.warning("rollout: the judge's replies for %d of %d answers could not be read", len(graded) - len(scores), len(graded))
    return len(scores), (sum(scores) / len(scores) if scores else None)
