"""Harvest: the gateway's request log for a window, joined with the feedback users gave on
those answers (which may come later: feedback is read up to now). Only answered user requests
are harvested; the rest is counted by reason (the platform's own traffic, errors, other
endpoints), and lines that cannot be read are quarantined with the reason.

Feedback is taken once per answer (the first vote; the gateway refuses a second one, and this
holds across replicas and restarts) and only from the principal the answer was given to.
Each principal's requests and feedback are capped per day, and principals whose traffic looks
like an attempt to steer the model are flagged (`principals.py`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from domainllm.artifacts.fs import join, url_to_fs
from domainllm.flywheel.principals import UNKNOWN, Caps, PrincipalStats, flag
from domainllm.flywheel.window import Window
from domainllm.spec.flywheel import HarvestConfig

log = logging.getLogger(__name__)

REQUESTS, FEEDBACK = "requests", "feedback"


@dataclass
class Harvest:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    principals: dict[str, PrincipalStats] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)


def log_files(log_root: str, kind: str, window: Window, until: dt.datetime | None = None) -> list[str]:
    """Every JSONL part of `kind` in the window's hour partitions, in order."""
    fs, root = url_to_fs(log_root)
    files: list[str] = []
    for hour in window.hours(until):
        folder = join(root, kind, hour)
        if fs.isdir(folder):
            files.extend(sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".jsonl")))
    return files


def files_fingerprint(log_root: str, files: list[str]) -> str:
    """Changes when a file appears or grows (the gateway appends to the current hour's part)."""
    fs, _ = url_to_fs(log_root)
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path}\0{fs.size(path)}\n".encode())
    return h.hexdigest()


def _lines(log_root: str, files: list[str]):
    fs, _ = url_to_fs(log_root)
    for path in files:
        with fs.open(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield path.rsplit("/", 3)[-3:], n, line


def _text(content) -> str | None:
    """A message's text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "\n".join(p["text"] for p in content if p.get("type") == "text" and isinstance(p.get("text"), str))
    return None


def _prompt_messages(rec: dict) -> list[dict] | None:
    if rec.get("endpoint") == "chat.completions":
        msgs = rec.get("messages")
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
            return None
        if any(m.get("role") == "tool" or m.get("tool_calls") for m in msgs):
            return None  # tool-calling exchanges are not preference data (yet)
        texts = [_text(m.get("content")) for m in msgs]
        if any(t is None for t in texts):
            return None
        return [{"role": str(m.get("role") or "user"), "content": t} for m, t in zip(msgs, texts, strict=True)]
    prompt = rec.get("prompt")
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else None


def read_feedback(log_root: str, files: list[str], result: Harvest) -> tuple[dict[tuple[str, str], dict], dict[str, list[float]]]:
    """(request id, principal) -> that principal's first feedback on the answer (a rating
    and/or a preferred answer; later votes are counted and left out), and principal -> when
    it sent feedback."""
    first: dict[tuple[str, str], dict] = {}
    times: dict[str, list[float]] = {}
    records = []
    for where, n, line in _lines(log_root, files):
        try:
            fb = json.loads(line)
            if not isinstance(fb, dict) or not isinstance(fb["request_id"], str):
                raise TypeError
            at = float(fb.get("received_at") or 0)
        except (ValueError, KeyError, TypeError):
            _quarantine(result, where, n, "bad_feedback_line", line)
            continue
        result.counts["feedback_records"] += 1
        records.append((at, fb))
    for at, fb in sorted(records, key=lambda r: r[0]):
        key = (fb["request_id"], str(fb.get("principal") or UNKNOWN))
        times.setdefault(key[1], []).append(at)
        if key in first:
            result.counts["feedback.repeated_vote"] += 1
            continue
        first[key] = fb
    return first, times


def harvest(log_root: str, window: Window, *, cfg: HarvestConfig | None = None, now: dt.datetime | None = None) -> Harvest:
    cfg = cfg or HarvestConfig()
    result = Harvest()
    now = now or dt.datetime.now(dt.UTC)
    feedback, feedback_times = read_feedback(log_root, log_files(log_root, FEEDBACK, window, until=max(now, window.end)), result)
    caps = Caps(cfg)
    receivers: dict[str, str] = {}  # request id -> the principal that got the answer (harvested or capped)
    for where, n, line in _lines(log_root, log_files(log_root, REQUESTS, window)):
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or not isinstance(rec.get("request_id"), str):
                raise ValueError("no request_id")
        except ValueError:
            _quarantine(result, where, n, "bad_request_line", line)
            continue
        result.counts["requests"] += 1
        if not window.contains(float(rec.get("received_at") or 0)):
            result.counts["skipped.outside_window"] += 1
            continue
        if rec.get("source", "user") != "user":
            result.counts[f"skipped.source.{rec['source']}"] += 1
            continue
        if not 200 <= int(rec.get("status") or 0) < 300:
            result.counts["skipped.not_answered"] += 1
            continue
        if rec["request_id"] in receivers:
            result.counts["skipped.repeated_request_id"] += 1
            continue
        messages = _prompt_messages(rec)
        answers = rec.get("answers") or []
        if messages is None or not answers or not isinstance(answers[0], str):
            _quarantine(result, where, n, "no_prompt_or_answer", line)
            continue
        principal = receivers[rec["request_id"]] = str(rec.get("principal") or UNKNOWN)
        if not caps.take_request(principal, float(rec["received_at"])):
            result.counts["capped.requests"] += 1
            continue
        fb = feedback.get((rec["request_id"], principal), {})
        if fb and not caps.take_feedback(principal, float(fb.get("received_at") or 0)):
            result.counts["capped.feedback"] += 1
            fb = {}
        result.rows.append({
            "request_id": rec["request_id"], "received_at": float(rec["received_at"]), "route": rec.get("route"), "principal": principal,
            "version": str(rec.get("version")), "prompt": messages, "answer": answers[0],
            "finish_reason": (rec.get("finish_reasons") or [None])[0], "latency_ms": rec.get("latency_ms"),
            "rating": fb.get("rating"), "preferred": fb.get("preferred"),
            "intent": rec.get("intent"), "retrieval": bool((rec.get("retrieval") or {}).get("on")),
            "citations": (rec.get("retrieval") or {}).get("chunks") or [],
        })  # fmt: skip
        intent = rec.get("intent") or "none"  # the gateway's intent route (none: no routing configured)
        result.counts[f"intent.{intent}"] += 1
        result.counts[f"intent.{intent}.retrieval"] += bool((rec.get("retrieval") or {}).get("on"))
    # the gateway takes feedback only from the answer's receiver: a record that says otherwise did not come through it
    result.counts["feedback.not_from_receiver"] = sum(1 for rid, p in feedback if receivers.get(rid, p) != p)
    result.principals = dict(caps.stats)
    result.flags = flag(result.rows, result.principals, feedback_times, cfg)
    if result.flags and cfg.on_anomaly == "exclude":
        for row in result.rows:
            if row["principal"] in result.flags and (row["rating"] or row["preferred"]):
                row["rating"] = row["preferred"] = None
                result.counts["excluded.feedback_of_flagged"] += 1
    result.counts["principals"] = len(result.principals)
    result.counts["principals_flagged"] = len(result.flags)
    result.counts["harvested"] = len(result.rows)
    result.counts["with_feedback"] = sum(1 for r in result.rows if r["rating"] or r["preferred"])
    return result


def _quarantine(result: Harvest, where: list[str], n: int, reason: str, line: bytes) -> None:
    result.counts[f"quarantined.{reason}"] += 1
    result.quarantine.append({"file": "/".join(where), "position": n, "reason": reason, "detail": "",
                              "raw": line[:2000].decode("utf-8", "replace")})  # fmt: skip
