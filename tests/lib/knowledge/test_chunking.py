"""Chunks are windows of the embedding model's tokens with the configured overlap, returned
as the document's own text with their character spans (what citations point at)."""

from __future__ import annotations

import json

from domainllm.knowledge.chunking import chunk_document, title_of
from domainllm.knowledge.embedding import Embedder
from domainllm.spec.knowledge import BUILTIN_EMBEDDING


def test_windows_overlap_and_point_back_into_the_document() -> None:
    tok = Embedder(BUILTIN_EMBEDDING).tokenizer
    words = [f"word{i}" for i in range(300)]
    doc = {"id": "d1", "source": "docs", "text": "  ".join(words), "metadata": json.dumps({"path": "guide/intro.pod"})}
    chunks = list(chunk_document(doc, tok, tokens=50, overlap=10))
    ids = tok(doc["text"], add_special_tokens=False)["input_ids"]
    assert len(chunks) == -(-(len(ids) - 10) // 40)  # every 40 tokens a new window, the last one reaching the end
    for c in chunks:
        assert doc["text"][c.start : c.end] == c.text and len(tok(c.text, add_special_tokens=False)["input_ids"]) <= 50
        assert c.title == "guide/intro.pod" and c.chunk_id == f"d1:{c.index}"
    assert chunks[-1].end == len(doc["text"].rstrip())
    first_end = chunks[0].text.split()[-1]
    assert first_end in chunks[1].text  # the overlap repeats the end of the previous chunk
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_short_and_blank_documents() -> None:
    tok = Embedder(BUILTIN_EMBEDDING).tokenizer
    assert [c.text for c in chunk_document({"id": "s", "source": "x", "text": "one line"}, tok, 50, 10)] == ["one line"]
    assert list(chunk_document({"id": "b", "source": "x", "text": "   \n "}, tok, 50, 10)) == []


def test_titles() -> None:
    assert title_of("d", json.dumps({"title": "The manual", "path": "a.pod"})) == "The manual"
    assert title_of("d", json.dumps({"path": "notes.jsonl", "line": 7})) == "notes.jsonl:7"
    assert title_of("d", json.dumps({"fields": {"title": "From the record"}, "path": "r.jsonl", "line": 1})) == "From the record"
    assert title_of("doc-9", "not json") == "doc-9"
