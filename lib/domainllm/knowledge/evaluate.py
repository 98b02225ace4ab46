"""How well the index finds what it should: a labelled set of queries, each with the
documents that answer it (ids or paths); recall@k (the share of a query's relevant
documents among the top k chunks' documents) and MRR (1 / rank of the first relevant
chunk), averaged over the queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domainllm.knowledge.store import Hit, Reader


@dataclass(frozen=True)
class Query:
    query: str
    relevant: frozenset[str]


def load_queries(path: str) -> list[Query]:
    """JSONL of {"query": str, "relevant": [str, ...]}; ValueError naming the line otherwise."""
    import fsspec

    from domainllm.evals.jsonl import json_objects

    queries = []
    with fsspec.open(path, "rt", encoding="utf-8") as fh:
        for n, row in json_objects(fh, path, ValueError):
            if not isinstance(row.get("query"), str) or not row["query"].strip():
                raise ValueError(f"{path} line {n}: needs a non-empty string `query`")
            relevant = row.get("relevant")
            if not isinstance(relevant, list) or not relevant or not all(isinstance(r, str) for r in relevant):
                raise ValueError(f"{path} line {n}: needs `relevant`, a non-empty list of document ids or paths")
            queries.append(Query(row["query"], frozenset(relevant)))
    if not queries:
        raise ValueError(f"{path} has no queries")
    return queries


def _is_relevant(hit: Hit, relevant: frozenset[str]) -> bool:
    return hit.doc_id in relevant or hit.title in relevant


def score(reader: Reader, embedder: Any, queries: list[Query], ks: tuple[int, ...]) -> tuple[dict[str, float], list[dict]]:
    """(metrics `retrieval.recall@k` and `retrieval.mrr`, a row per query)."""
    depth = max(ks)
    vectors = embedder.encode([q.query for q in queries])
    rows, sums = [], dict.fromkeys([*(f"retrieval.recall_at_{k}" for k in ks), "retrieval.mrr"], 0.0)
    for q, vector in zip(queries, vectors, strict=True):
        hits = reader.search(vector, depth)
        row: dict[str, Any] = {"query": q.query, "relevant": sorted(q.relevant), "retrieved": [h.title for h in hits]}
        for k in ks:
            found = {h.doc_id for h in hits[:k] if _is_relevant(h, q.relevant)}
            titles = {h.title for h in hits[:k] if _is_relevant(h, q.relevant)}
            row[f"recall_at_{k}"] = min(1.0, max(len(found), len(titles)) / len(q.relevant))
            sums[f"retrieval.recall_at_{k}"] += row[f"recall_at_{k}"]
        rank = next((i for i, h in enumerate(hits, 1) if _is_relevant(h, q.relevant)), None)
        row["reciprocal_rank"] = 1.0 / rank if rank else 0.0
        sums["retrieval.mrr"] += row["reciprocal_rank"]
        rows.append(row)
    return {k: v / len(queries) for k, v in sums.items()}, rows
