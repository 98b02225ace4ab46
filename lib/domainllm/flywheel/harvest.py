"""Harvest: the gateway's request log for a window, joined with the feedback users gave on
those answers (which may come later: feedback is read up to now). Only answered user requests
are harvested; the rest is counted by reason (the platform's own traffic, errors, other
endpoints), and lines that cannot be read are quarantined with the reason."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from domainllm.artifacts.fs import join, url_to_fs
from domainllm.flywheel.window import Window

log = logging.getLogger(__name__)

REQUESTS, FEEDBACK = "requests", "feedback"


@dataclass
class Harvest:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


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


def _prompt_messages(rec: dict) -> list[dict] | None:
    if rec.get("endpoint") == "chat.completions":
        msgs = rec.get("messages")
        if isinstance(msgs, list) and msgs and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
            return [{"role": str(m.get("role") or "user"), "content": m["content"]} for m in msgs]
        return None
    prompt = rec.get("prompt")
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else None


def read_feedback(log_root: str, files: list[str], result: Harvest) -> dict[str, dict]:
    """request id -> the latest feedback on it (a rating and/or a preferred answer)."""
    latest: dict[str, dict] = {}
    for where, n, line in _lines(log_root, files):
        try:
            fb = json.loads(line)
            rid = fb["request_id"]
            if not isinstance(rid, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            _quarantine(result, where, n, "bad_feedback_line", line)
            continue
        result.counts["feedback_records"] += 1
        prev = latest.get(rid)
        if prev is None or (fb.get("received_at") or 0) >= (prev.get("received_at") or 0):
            merged = dict(prev or {})
            merged.update({k: v for k, v in fb.items() if v is not None})
            latest[rid] = merged
    return latest


def harvest(log_root: str, window: Window, *, now: dt.datetime | None = None) -> Harvest:
    result = Harvest()
    now = now or dt.datetime.now(dt.UTC)
    feedback = read_feedback(log_root, log_files(log_root, FEEDBACK, window, until=max(now, window.end)), result)
    seen: set[str] = set()
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
        if rec["request_id"] in seen:
            result.counts["skipped.repeated_request_id"] += 1
            continue
        messages = _prompt_messages(rec)
        answers = rec.get("answers") or []
        if messages is None or not answers or not isinstance(answers[0], str):
            _quarantine(result, where, n, "no_prompt_or_answer", line)
            continue
        seen.add(rec["request_id"])
        fb = feedback.get(rec["request_id"], {})
        result.rows.append({
            "request_id": rec["request_id"], "received_at": float(rec["received_at"]), "route": rec.get("route"),
            "version": str(rec.get("version")), "prompt": messages, "answer": answers[0],
            "finish_reason": (rec.get("finish_reasons") or [None])[0], "latency_ms": rec.get("latency_ms"),
            "rating": fb.get("rating"), "preferred": fb.get("preferred"),
            "intent": rec.get("intent"), "retrieval": bool((rec.get("retrieval") or {}).get("on")),
            "citations": (rec.get("retrieval") or {}).get("chunks") or [],
        })  # fmt: skip
        intent = rec.get("intent") or "none"  # the gateway's intent route (none: no routing configured)
        result.counts[f"intent.{intent}"] += 1
        result.counts[f"intent.{intent}.retrieval"] += bool((rec.get("retrieval") or {}).get("on"))
    result.counts["harvested"] = len(result.rows)
    result.counts["with_feedback"] = sum(1 for r in result.rows if r["rating"] or r["preferred"])
    return result


def _quarantine(result: Harvest, where: list[str], n: int, reason: str, line: bytes) -> None:
    result.counts[f"quarantined.{reason}"] += 1
    result.quarantine.append({"file": "/".join(where), "position": n, "reason": reason, "detail": "",
                              "raw": line[:2000].decode("utf-8", "replace")})  # fmt: skip
