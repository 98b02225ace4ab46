"""Retrieval and intent routing in the gateway. How a request is augmented (context or
few-shot, chat or completions, the request's own switch), and then the real thing: a
LanceDB knowledge base, a trained intent classifier and the gateway in front of vLLM's CPU
build, answering with citations (also in a stream), logging and counting each route."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from domainllm.knowledge.store import Hit
from domainllm.serve.gateway.augment import (
    AUGMENT_FILE,
    AugmentError,
    apply,
    parse_override,
    query_of,
    write_config,
)
from domainllm.serve.gateway.routes import Route, write_routes
from domainllm.serve.vllm_server import VllmServer
from tests.lib.evals.vllm_helpers import needs_vllm
from tests.lib.serve.gateway.helpers import Gateway, running_gateway

HITS = [Hit("a:0", "a", "docs", "perlfunc.pod", 0, "open FILEHANDLE,MODE,EXPR opens a file.", 0.8),
        Hit("b:0", "b", "docs", "File/Copy.pm", 0, "copy($from, $to) copies a file.", 0.6),
        Hit("c:0", "c", "docs", "perlvar.pod", 0, "$_ is the default variable.", 0.1)]  # fmt: skip
POLICY = {"enabled": True, "k": 3, "mode": "context", "template": "Use these:\n{context}", "min_score": 0.2, "max_chars": 6000}


def test_context_goes_into_one_system_message_numbered_best_first() -> None:
    req = {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How to open?"}]}
    out, kept = apply("chat.completions", req, POLICY, "You know Perl.", HITS)
    assert [h.chunk_id for h in kept] == ["a:0", "b:0"]  # c is below min_score
    system = out["messages"][0]
    assert system["role"] == "system" and len(out["messages"]) == 2
    assert system["content"].startswith("You know Perl.\n\nUse these:\n[1] perlfunc.pod\nopen FILEHANDLE") and "[2] File/Copy.pm" in system["content"]
    assert system["content"].endswith("Be brief.") and req["messages"][0]["content"] == "Be brief."  # the caller's is untouched


def test_few_shot_and_completions_and_the_budget() -> None:
    req = {"messages": [{"role": "user", "content": "copy?"}]}
    out, kept = apply("chat.completions", req, {**POLICY, "mode": "few_shot"}, None, HITS)
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert out["messages"][1]["content"] == "open FILEHANDLE,MODE,EXPR opens a file." and out["messages"][-1]["content"] == "copy?"
    out, kept = apply("completions", {"prompt": "sub copy {"}, {**POLICY, "max_chars": 60}, None, HITS)
    assert len(kept) == 1 and out["prompt"].startswith("Use these:\n[1] perlfunc.pod") and out["prompt"].endswith("sub copy {")
    out, kept = apply("chat.completions", req, POLICY, None, [])
    assert out == req and kept == []


def test_what_the_user_asked_and_their_switch() -> None:
    assert query_of("chat.completions", {"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                                                      {"role": "user", "content": [{"type": "text", "text": "last"}]}]}) == "last"  # fmt: skip
    assert query_of("completions", {"prompt": "p"}) == "p"
    assert parse_override(False) == {"enabled": False} and parse_override({"k": 2}) == {"enabled": True, "k": 2}
    for bad, why in (({"k": 0}, "from 1 to 32"), ({"sources": "docs"}, "list of source names"), ("yes", "must be true, false")):
        with pytest.raises(AugmentError, match=why):
            parse_override(bad)


DOCS = {
    "perl-open": ("perlfunc.pod", "open FILEHANDLE, MODE, EXPR opens the file whose name is EXPR and associates it with FILEHANDLE."),
    "perl-copy": ("File/Copy.pm", "File::Copy - copy files or filehandles. copy($from, $to) copies the file; move renames it."),
    "perl-sort": ("perlfunc.pod#sort", "sort SUBNAME LIST sorts the LIST and returns the sorted list value."),
    "py-http": ("http/client.py", "HTTPConnection sends HTTP requests to a server and reads the responses."),
}
INTENTS = {
    "perl_help": ["How do I open a file in Perl?", "perl copy a file", "What does sort do in Perl?", "perl regex to match digits",
                  "how to read lines from a filehandle in perl", "Perl hash of arrays example"],
    "chitchat": ["hi there", "how are you today?", "thanks, that was great", "good morning!", "who are you?", "tell me a joke"],
}


@pytest.fixture
def augmented_gateway(vllm_server: VllmServer, tmp_path: Path) -> Iterator[tuple[Gateway, Path]]:
    import pyarrow as pa

    from domainllm.knowledge.embedding import Embedder
    from domainllm.knowledge.lance_store import LanceStore
    from domainllm.knowledge.store import chunk_schema
    from domainllm.serve.intents import train
    from domainllm.spec.knowledge import BUILTIN_EMBEDDING

    embedder = Embedder(BUILTIN_EMBEDDING)
    ids = list(DOCS)
    vectors = embedder.encode([DOCS[i][1] for i in ids])
    batch = pa.RecordBatch.from_pydict({
        "chunk_id": [f"{i}:0" for i in ids], "doc_id": ids, "source": ["perl-docs"] * 3 + ["python"], "title": [DOCS[i][0] for i in ids],
        "chunk_index": [0] * 4, "start_char": [0] * 4, "end_char": [len(DOCS[i][1]) for i in ids], "text": [DOCS[i][1] for i in ids],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), embedder.dims)}, schema=chunk_schema(embedder.dims))  # fmt: skip
    ref = LanceStore(str(tmp_path / "kb"), "kb").write("t", [batch], chunk_schema(embedder.dims))
    texts = [t for ts in INTENTS.values() for t in ts]
    labels = [i for i, ts in INTENTS.items() for _ in ts]
    classifier, _ = train(embedder.encode(texts), labels, regularization=4.0, embedding=embedder.path)
    classifier.save(str(tmp_path / "classifier"))

    routes, logs = tmp_path / "routes.json", tmp_path / "logs"
    write_routes(routes, [Route("stable", vllm_server.base_url, "1", 100)])
    retrieval = {**POLICY, "k": 2, "sources": ["perl-docs"], "min_score": -1.0}
    write_config(routes.with_name(AUGMENT_FILE), {
        "knowledge": {"store": ref, "embedding": embedder.path},
        "intents": {"classifier": str(tmp_path / "classifier"), "min_confidence": 0.0, "fallback": None},
        "routes": {"default": {"retrieval": {**retrieval, "enabled": False}}, "perl_help": {"retrieval": retrieval, "system": "You know Perl."},
                   "chitchat": {"retrieval": {**retrieval, "enabled": False}}}})  # fmt: skip
    with running_gateway(routes, logs) as gw:
        yield gw, logs


@pytest.mark.slow
@needs_vllm
def test_answers_come_with_citations_routed_by_intent(augmented_gateway: tuple[Gateway, Path]) -> None:
    gw, logs = augmented_gateway
    url, client = gw.url, gw.client(timeout=120)
    ask = {"model": "tiny", "max_tokens": 8, "temperature": 0}
    r = client.post(f"{url}/v1/chat/completions", json={**ask, "messages": [{"role": "user", "content": "How can I copy a file with Perl?"}]},
                   timeout=120)  # fmt: skip
    assert r.status_code == 200 and r.headers["x-domainllm-intent"] == "perl_help" and r.headers["x-domainllm-retrieval"] == "on"
    body = r.json()
    assert [c["title"] for c in body["citations"]][0] == "File/Copy.pm" and len(body["citations"]) == 2
    assert {c["source"] for c in body["citations"]} == {"perl-docs"} and body["choices"][0]["message"]["content"] is not None
    assert body["usage"]["prompt_tokens"] > 60  # the model read the context, not just the question

    off = client.post(f"{url}/v1/chat/completions", json={**ask, "retrieval": False,
                                                         "messages": [{"role": "user", "content": "How can I copy a file with Perl?"}]})  # fmt: skip
    assert off.headers["x-domainllm-retrieval"] == "off" and "citations" not in off.json()
    assert off.json()["usage"]["prompt_tokens"] < body["usage"]["prompt_tokens"]
    hello = client.post(f"{url}/v1/chat/completions", json={**ask, "messages": [{"role": "user", "content": "good morning, how are you?"}]})
    assert hello.headers["x-domainllm-intent"] == "chitchat" and hello.headers["x-domainllm-retrieval"] == "off"
    forced = client.post(f"{url}/v1/completions", json={**ask, "prompt": "good morning, how are you?", "retrieval": {"k": 1}})
    assert forced.headers["x-domainllm-retrieval"] == "on" and len(forced.json()["citations"]) == 1

    with client.stream("POST", f"{url}/v1/chat/completions", timeout=120,
                      json={**ask, "stream": True, "messages": [{"role": "user", "content": "open a file in perl"}]}) as s:  # fmt: skip
        events = [line[5:].strip() for line in s.iter_lines() if line.startswith("data:")]
    first = json.loads(events[0])
    assert first["citations"][0]["title"] == "perlfunc.pod" and "choices" in first and events[-1] == "[DONE]"

    bad = client.post(f"{url}/v1/chat/completions", json={**ask, "retrieval": {"k": 0}, "messages": [{"role": "user", "content": "x"}]})
    assert bad.status_code == 400 and "retrieval.k" in bad.json()["error"]["message"]

    metrics = httpx.get(f"{gw.admin_url}/metrics").text
    on = re.search(r'domainllm_gateway_intent_requests_total\{intent="perl_help",retrieval="on"\} (\S+)', metrics)
    assert on and float(on.group(1)) == 2.0
    assert re.search(r'domainllm_gateway_retrieval_seconds_count\{intent="perl_help"\} 3', metrics)
    deadline, rows = time.monotonic() + 15, []
    while time.monotonic() < deadline and len(rows) < 5:
        rows = [json.loads(line) for f in sorted(logs.glob("requests/date=*/hour=*/*.jsonl")) for line in f.read_text().splitlines()]
        time.sleep(0.2)
    first_row = next(r for r in rows if r["retrieval"]["on"] and r["endpoint"] == "chat.completions" and not r["stream"])
    assert first_row["intent"] == "perl_help" and first_row["retrieval"]["chunks"][0] == "perl-copy:0" and first_row["intent_confidence"] > 0.5
    assert first_row["messages"] == [{"role": "user", "content": "How can I copy a file with Perl?"}]  # what the user asked, as asked
