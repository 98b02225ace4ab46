"""Curate harvested prompts: drop what must not be trained on, each drop quarantined with its
reason and counted. In order: empty or low-quality prompts, PII (scrubbed, not dropped: the
prompt stays usable), prompts matching an evaluation item (n-gram overlap, or the whole
normalized prompt), and repeats (exact or near-duplicate, MinHash) of a prompt seen earlier
tonight or already in the preference dataset."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from domainllm.spec import Spec
from domainllm.spec.flywheel import CurateConfig

log = logging.getLogger(__name__)

NUM_PERM = 128


def prompt_text(messages: list[dict]) -> str:
    """The text a prompt is judged by: its user turns."""
    return "\n".join(m["content"] for m in messages if m.get("role") == "user")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def prompt_hash(messages: list[dict]) -> str:
    return hashlib.sha256(normalize(prompt_text(messages)).encode()).hexdigest()[:32]


def quality_problem(text: str, cfg: CurateConfig) -> str | None:
    stripped = text.strip()
    if not stripped:
        return "empty"
    if len(stripped) < cfg.min_chars:
        return "too_short"
    if len(stripped) > cfg.max_chars:
        return "too_long"
    letters = sum(ch.isalpha() for ch in stripped)
    if letters / len(stripped) < cfg.min_alpha_ratio:
        return "low_alpha"
    return None


def eval_texts(spec: Spec) -> dict[str, list[str]]:
    """The prompts of the spec's eval suites, by set (what a model is judged on must never be
    trained on)."""
    from domainllm.evals.suites import load_choice_items, load_judge_items, load_problems

    ev = spec.evals
    out: dict[str, list[str]] = {}
    if ev.code.enabled:
        for s in ev.code.sets:
            out[f"code.{s.name}"] = [p.prompt for p in load_problems(s.path)]
    if ev.choice.enabled:
        for s in ev.choice.sets:
            out[f"choice.{s.name}"] = [f"{c.question}\n" + "\n".join(c.choices) for c in load_choice_items(s.path)]
    out[f"judge.{ev.judge.prompts.name}"] = [item.question for item in load_judge_items(ev.judge.prompts.path)]
    return out


@dataclass
class Curated:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


class Curator:
    def __init__(self, spec: Spec, known_prompts: Iterable[str] = (), *, scrubber=None) -> None:
        """`known_prompts`: prompt texts already in the preference dataset."""
        from datasketch import MinHashLSH

        from domainllm.data.decontam.filter import Decontaminator

        self.cfg = spec.flywheel.curate
        self.scrubber = scrubber
        if self.cfg.scrub_pii and scrubber is None:
            from domainllm.data.pii.scrubber import Scrubber

            pii = spec.data.pii
            self.scrubber = Scrubber(pii.entities, pii.ner_model, pii.ner_languages, pii.min_ner_score, pii.keep_ip_scopes,
                                     pii.names_en, pii.names_zh)  # fmt: skip
        self.decontaminator = None
        self.eval_prompts: set[str] = set()
        if self.cfg.decontaminate:
            from domainllm.data.decontam.index import build_index

            extra = eval_texts(spec)
            self.decontaminator = Decontaminator(spec.data.decontamination, build_index(spec.data.decontamination, extra))
            self.eval_prompts = {normalize(t) for texts in extra.values() for t in texts}
        self.lsh = MinHashLSH(threshold=self.cfg.near_duplicate_threshold, num_perm=NUM_PERM)
        self.exact: set[str] = set()
        for i, text in enumerate(known_prompts):
            self._remember(f"known-{i}", text)

    def _minhash(self, text: str):
        from datasketch import MinHash

        from domainllm.data.dedup.minhash import shingles

        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch(shingles(text, 3) or [b""])
        return m

    def _remember(self, key: str, text: str, minhash=None) -> None:
        self.exact.add(normalize(text))
        self.lsh.insert(key, minhash if minhash is not None else self._minhash(text))

    def curate(self, rows: list[dict[str, Any]]) -> Curated:
        out = Curated()
        out.counts["in"] = len(rows)
        for row in rows:
            reason = self._check(row, out.counts)
            if reason is not None:
                out.counts[f"dropped.{reason}"] += 1
                out.quarantine.append({"request_id": row["request_id"], "reason": reason,
                                       "raw": json.dumps(row, ensure_ascii=False, default=str)[:4000]})  # fmt: skip
                continue
            out.rows.append(row)
        out.counts["kept"] = len(out.rows)
        return out

    def _scrub(self, row: dict[str, Any], counts: Counter) -> None:
        found_any = False
        for m in [*row["prompt"], row]:
            key = "content" if "content" in m else "answer"
            clean, found = self.scrubber.scrub(m[key])
            if found:
                m[key], found_any = clean, True
                counts.update({f"pii.{k}": v for k, v in found.items()})
        if row.get("preferred"):
            row["preferred"], found = self.scrubber.scrub(row["preferred"])
            found_any |= bool(found)
        counts["pii_scrubbed_prompts"] += found_any

    def _check(self, row: dict[str, Any], counts: Counter) -> str | None:
        if self.scrubber is not None:
            self._scrub(row, counts)
        text = prompt_text(row["prompt"])
        problem = quality_problem(text, self.cfg)
        if problem is not None:
            return problem
        if self.decontaminator is not None:
            if normalize(text) in self.eval_prompts:
                return "eval_prompt"
            if self.decontaminator.batch([{"text": text, "source": "flywheel"}])[0] is not None:
                return "eval_overlap"
        key = normalize(text)
        if key in self.exact:
            return "duplicate"
        minhash = self._minhash(text)
        if self.lsh.query(minhash):
            return "near_duplicate"
        self._remember(row["request_id"], text, minhash)
        row["prompt_hash"] = prompt_hash(row["prompt"])
        return None
