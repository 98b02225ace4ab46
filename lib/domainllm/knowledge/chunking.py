"""Token windows over a document, cut where the embedding model's tokens fall and returned
as the document's own text (character spans kept for citations)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    source: str
    title: str
    """What a citation names: the document's path (or its id when it has none)."""
    index: int
    start: int
    end: int
    """Character span in the document."""
    text: str


def title_of(doc_id: str, metadata: str) -> str:
    """A document's title, else its file (and line, for a record of a JSONL file), else its id."""
    try:
        meta: dict[str, Any] = json.loads(metadata or "{}")
    except ValueError:
        meta = {}
    title = meta.get("title") or (meta.get("fields") or {}).get("title")
    if title:
        return str(title)
    if meta.get("path"):
        return f"{meta['path']}:{meta['line']}" if meta.get("line") else str(meta["path"])
    return doc_id


def chunk_document(doc: dict[str, str], tokenizer: Any, tokens: int, overlap: int) -> Iterator[Chunk]:
    """Windows of `tokens` tokens, each starting `tokens - overlap` after the last; the last
    window ends at the document's end. Whitespace-only windows are left out."""
    text = doc["text"]
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                        verbose=False)["offset_mapping"]  # fmt: skip
    title = title_of(doc["id"], doc.get("metadata", "{}"))
    step, index, lo = tokens - overlap, 0, 0
    while lo < len(offsets):
        hi = min(lo + tokens, len(offsets))
        start, end = offsets[lo][0], offsets[hi - 1][1]
        piece = text[start:end]
        if piece.strip():
            yield Chunk(f"{doc['id']}:{index}", doc["id"], doc["source"], title, index, start, end, piece)
            index += 1
        if hi == len(offsets):
            break
        lo += step
