"""Retrieval-augmented requests, routed by intent. The rollout writes `augment.json` beside the
routes (the knowledge base version, its embedding model, the intent classifier and each
route's policy); the gateway rereads it when it changes. Per request: the user's last
message is embedded once; the classifier picks the intent route (below `min_confidence`:
the fallback, else `default`); if the route (or the request's own `"retrieval"` field)
says so, the top-k chunks go into the request as context or few-shot examples, and the
answer carries them as `citations`. Everything here blocks (embedding, search), so the app
calls it from a worker thread."""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

AUGMENT_FILE = "augment.json"
DEFAULT_ROUTE = "default"


class AugmentError(ValueError):
    """The request's `retrieval` field is malformed (a 400 for the client)."""


@dataclass
class Augmented:
    request: dict[str, Any]
    """The request to forward (the caller's, with context added and our fields removed)."""
    intent: str = DEFAULT_ROUTE
    confidence: float | None = None
    retrieval: bool = False
    citations: list[dict[str, Any]] = field(default_factory=list)
    retrieval_ms: float = 0.0
    error: str | None = None
    """Why retrieval was skipped for this request (it failed); None when it ran or was off."""

    def log_fields(self) -> dict[str, Any]:
        return {"intent": self.intent, "intent_confidence": self.confidence,
                "retrieval": {"on": self.retrieval, "chunks": [c["chunk_id"] for c in self.citations],
                              "ms": round(self.retrieval_ms, 3), **({"error": self.error} if self.error else {})}}  # fmt: skip


def write_config(path: Path, config: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, path)


def query_of(endpoint: str, req: dict[str, Any]) -> str:
    """What the user asked: the last user message (text parts joined), or the prompt."""
    if endpoint == "completions":
        prompt = req.get("prompt")
        return prompt if isinstance(prompt, str) else ""
    for message in reversed(req.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            return content if isinstance(content, str) else ""
    return ""


def parse_override(value: Any) -> dict[str, Any] | None:
    """The request's `retrieval`: true/false, or {"k", "sources"}; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {"enabled": value}
    if isinstance(value, dict) and set(value) <= {"enabled", "k", "sources"}:
        k, sources = value.get("k"), value.get("sources")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 32):
            raise AugmentError("`retrieval.k` must be an integer from 1 to 32")
        if sources is not None and (not isinstance(sources, list) or not all(isinstance(s, str) for s in sources)):
            raise AugmentError("`retrieval.sources` must be a list of source names")
        return {"enabled": bool(value.get("enabled", True)), **({"k": k} if k else {}), **({"sources": sources} if sources else {})}
    raise AugmentError('`retrieval` must be true, false or {"k": N, "sources": [...]}')


def _context(hits: list[Any], policy: dict[str, Any]) -> tuple[list[Any], str]:
    """The hits that fit the budget, and the numbered context made of them."""
    kept, parts, used = [], [], 0
    for hit in hits:
        if hit.score < policy.get("min_score", 0.0):
            continue
        budget = policy.get("max_chars", 6000)
        part = f"[{len(kept) + 1}] {hit.title}\n{hit.text.strip()}"
        if kept and used + len(part) > budget:
            break
        part = part[:budget]  # the best chunk alone may be over the budget: cut, not dropped
        kept.append(hit)
        parts.append(part)
        used += len(part)
    return kept, "\n\n".join(parts)


def apply(endpoint: str, req: dict[str, Any], policy: dict[str, Any], system: str | None, hits: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    """The request with the route's system message and the retrieved chunks in it."""
    out = copy.deepcopy(req)
    kept, context = _context(hits, policy) if hits else ([], "")
    few_shot = policy.get("mode") == "few_shot"
    header = "\n\n".join(p for p in (system, "" if few_shot or not kept else policy["template"].replace("{context}", context)) if p)
    if endpoint == "completions":
        examples = "".join(f"Q: {h.title}\nA: {h.text.strip()}\n\n" for h in kept) if few_shot else ""
        out["prompt"] = (header + "\n\n" if header else "") + examples + str(out.get("prompt", ""))
        return out, kept
    messages = list(out.get("messages") or [])
    if few_shot:
        shots = [m for h in kept for m in ({"role": "user", "content": f"What does {h.title} say?"},
                                           {"role": "assistant", "content": h.text.strip()})]  # fmt: skip
        start = 1 if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system" else 0
        messages[start:start] = shots
    if header:
        if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
            messages[0] = {**messages[0], "content": header + "\n\n" + messages[0]["content"]}
        else:
            messages.insert(0, {"role": "system", "content": header})
    out["messages"] = messages
    return out, kept


class Augmenter:
    """One `augment.json`: its embedder, store reader and classifier, loaded on first use."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.routes: dict[str, dict[str, Any]] = config.get("routes") or {}
        self.intents: dict[str, Any] | None = config.get("intents")

    @cached_property
    def embedder(self):
        from domainllm.knowledge.embedding import Embedder

        return Embedder(self.config["knowledge"]["embedding"], device="cpu")

    @cached_property
    def reader(self):
        from domainllm.knowledge.store import reader

        return reader(self.config["knowledge"]["store"])

    @cached_property
    def classifier(self):
        from domainllm.serve.intents import IntentClassifier

        return IntentClassifier.load(self.intents["classifier"]) if self.intents else None

    def warm(self) -> None:
        """Loads the model, opens the store and the classifier now, not on a user's request."""
        if self.config.get("knowledge"):
            self.route(self.embedder.encode(["warm-up"])[0])
            self.reader.count()

    def route(self, vector: Any) -> tuple[str, float | None]:
        if self.classifier is None:
            return DEFAULT_ROUTE, None
        intent, confidence = self.classifier.predict(vector.reshape(1, -1))[0]
        if confidence < self.intents.get("min_confidence", 0.0):
            return self.intents.get("fallback") or DEFAULT_ROUTE, confidence
        return intent, confidence

    def augment(self, endpoint: str, req: dict[str, Any]) -> Augmented:
        override = parse_override(req.get("retrieval"))
        clean = {k: v for k, v in req.items() if k != "retrieval"}
        query = query_of(endpoint, clean)
        if not query.strip() or not self.config.get("knowledge"):
            return Augmented(clean)
        t0 = time.perf_counter()
        vector = self.embedder.encode([query])[0]
        intent, confidence = self.route(vector)
        route = self.routes.get(intent) or self.routes.get(DEFAULT_ROUTE) or {}
        policy = {**route.get("retrieval", {}), **(override or {})}
        hits = []
        if policy.get("enabled"):
            hits = self.reader.search(vector, int(policy.get("k", 4)), policy.get("sources") or None)
        out, kept = apply(endpoint, clean, policy, route.get("system"), hits)
        return Augmented(out, intent, confidence, bool(policy.get("enabled")),
                         [h.citation(n) for n, h in enumerate(kept, 1)], (time.perf_counter() - t0) * 1000)  # fmt: skip


class AugmentTable:
    """The `augment.json` beside the routes, reread when it changes (a new Augmenter then;
    the embedder is kept when its model is the same). No file: requests pass unchanged."""

    def __init__(self, path: Path, *, recheck_s: float = 0.5) -> None:
        self.path, self.recheck_s = path, recheck_s
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._checked = 0.0
        self.current: Augmenter | None = None

    def get(self) -> Augmenter | None:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.recheck_s:
                self._checked = now
                try:
                    st = self.path.stat()
                    version: tuple[int, int] | None = (st.st_ino, st.st_mtime_ns)
                except FileNotFoundError:
                    version = None
                if version != self._version:
                    self._version = version
                    self.current = self._load() if version else None
            return self.current

    def _load(self) -> Augmenter | None:
        try:
            augmenter = Augmenter(json.loads(self.path.read_text()))
        except (OSError, ValueError) as exc:
            log.error("gateway: %s is unreadable (%s); requests pass without retrieval", self.path, exc)
            return None
        old = self.current
        if old is not None and "embedder" in old.__dict__ and old.config.get("knowledge", {}).get("embedding") == \
                augmenter.config.get("knowledge", {}).get("embedding"):  # fmt: skip
            augmenter.__dict__["embedder"] = old.__dict__["embedder"]
        try:
            augmenter.warm()
        except Exception:  # a missing store or model: answer without retrieval rather than not at all
            log.exception("gateway: cannot load retrieval from %s; requests pass without it", self.path)
            return None
        log.info("gateway: retrieval and intent routing from %s (routes: %s)", self.path, ", ".join(augmenter.routes))
        return augmenter
