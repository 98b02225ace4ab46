"""Demo users: questions about Perl modules sent through the gateway (some streamed, some
asked twice, one with personal data in it) and feedback on the answers (thumbs up or down,
and now and then a better answer written by the user, taken from the module's synopsis).
What the data flywheel harvests in the demo and in the end-to-end test."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class Traffic:
    requests: int = 0
    answered: int = 0
    feedback: int = 0
    request_ids: list[str] = field(default_factory=list)


def questions(synopses: Path, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(question, the module's one-line description) for `n` modules of the corpus."""
    modules = []
    for line in synopses.read_bytes().splitlines():  # the demo file has broken lines on purpose: skip them
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one
            continue
        if not isinstance(record, dict):
            continue
        module, text = record.get("module"), record.get("text") or ""
        head = text.split("\n", 1)[0]
        if module and " - " in head:
            modules.append((module, head.split(" - ", 1)[1].strip().rstrip(".")))
    random.Random(seed).shuffle(modules)
    asks = ("What does the {m} module do?", "When would I use {m} in a Perl program?", "Explain the Perl module {m} briefly.")
    return [(asks[i % len(asks)].format(m=m), f"{m}: {d}.") for i, (m, d) in enumerate(modules[:n])]


def send(gateway_url: str, model: str, asked: list[tuple[str, str]], *, api_key: str, max_tokens: int = 48, seed: int = 0,
         timeout_s: float = 120) -> Traffic:  # fmt: skip
    """Asks every question with the users' `api_key` (every third one streamed, the first one
    twice, one with an email address and a phone number in it) and gives feedback on about
    two answers in three."""
    rng = random.Random(seed)
    out = Traffic()
    extra = [(asked[0][0], asked[0][1])] if asked else []  # a repeated question
    if asked:
        extra.append((f"I am Ann (ann.smith@example.org, +1 212 555 0187). {asked[-1][0]}", asked[-1][1]))
    with httpx.Client(base_url=gateway_url, timeout=timeout_s, headers={"Authorization": f"Bearer {api_key}"}) as client:
        for i, (question, better) in enumerate([*asked, *extra]):
            body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
                    "temperature": 0.7, "stream": i % 3 == 2}  # fmt: skip
            out.requests += 1
            with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                resp.read()
                if resp.status_code != 200:
                    continue
                rid = resp.headers["x-request-id"]
            out.answered += 1
            out.request_ids.append(rid)
            roll = rng.random()
            fb = {"request_id": rid, "rating": "up"} if roll < 0.3 else {"request_id": rid, "rating": "down"} if roll < 0.5 \
                else {"request_id": rid, "preferred": better} if roll < 0.7 else None  # fmt: skip
            if fb is not None and client.post("/v1/feedback", json=fb).status_code == 202:
                out.feedback += 1
    return out


def ask_with_citations(gateway_url: str, model: str, question: str, *, api_key: str, max_tokens: int = 48,
                       timeout_s: float = 120) -> str:  # fmt: skip
    """One question through the gateway, shown as a user sees it: the intent route it took,
    the answer, and the knowledge-base chunks it cites. `api_key`: the platform's (its
    request is marked as the demo's, and the flywheel leaves it out)."""
    body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens, "temperature": 0}
    resp = httpx.post(f"{gateway_url}/v1/chat/completions", json=body, timeout=timeout_s,
                      headers={"x-domainllm-source": "demo", "Authorization": f"Bearer {api_key}"})  # fmt: skip
    resp.raise_for_status()
    data = resp.json()
    lines = [f"Q: {question}", f"   route: {resp.headers.get('x-domainllm-intent')}, retrieval: {resp.headers.get('x-domainllm-retrieval')}",
             f"A: {data['choices'][0]['message']['content'].strip()[:300]!r}"]  # fmt: skip
    lines += [f"   [{c['number']}] {c['doc_id']}" + (f" ({c['title']})" if c["title"] != c["doc_id"] else "")
              + f", {c['source']} chunk {c['chunk']}, score {c['score']:.2f}" for c in data.get("citations", [])]  # fmt: skip
    return "\n".join(lines)
