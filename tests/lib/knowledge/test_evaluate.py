"""Retrieval metrics: recall@k and MRR computed by hand on a fixed ranking, and labelled sets
that are wrong say where."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from domainllm.knowledge.evaluate import Query, load_queries, score
from domainllm.knowledge.store import Hit


class Ranked:
    """A reader that answers every query with the same ranking."""

    def __init__(self, docs: list[str]) -> None:
        self.hits = [Hit(f"{d}:0", d, "s", f"{d}.pod", 0, "t", 1.0 - i / 10) for i, d in enumerate(docs)]

    def search(self, vector, k, sources=None):
        return self.hits[:k]

    def count(self) -> int:
        return len(self.hits)


class Zeros:
    def encode(self, texts):
        return np.zeros((len(texts), 4), dtype=np.float32)


def test_recall_at_k_and_mrr_by_hand() -> None:
    queries = [Query("a", frozenset({"d2"})), Query("b", frozenset({"d1", "d9"})), Query("c", frozenset({"d4.pod"}))]
    metrics, rows = score(Ranked(["d1", "d2", "d3", "d4"]), Zeros(), queries, (1, 3))
    # a: d2 at rank 2; b: d1 at rank 1 (one of two relevant); c: matched by title at rank 4 (beyond k=3)
    assert rows[0]["recall_at_1"] == 0 and rows[0]["recall_at_3"] == 1 and rows[0]["reciprocal_rank"] == 0.5
    assert rows[1]["recall_at_1"] == 0.5 and rows[1]["recall_at_3"] == 0.5 and rows[1]["reciprocal_rank"] == 1.0
    assert rows[2]["recall_at_3"] == 0 and rows[2]["reciprocal_rank"] == 0.0  # searched to depth max(k) = 3
    assert metrics == pytest.approx({"retrieval.recall_at_1": 0.5 / 3, "retrieval.recall_at_3": 1.5 / 3, "retrieval.mrr": 1.5 / 3})


@pytest.mark.parametrize(("line", "why"), [
    ("not json", "line 1: not valid JSON"),
    (json.dumps({"relevant": ["d"]}), "line 1: needs a non-empty string `query`"),
    (json.dumps({"query": "q", "relevant": []}), "line 1: needs `relevant`"),
])  # fmt: skip
def test_bad_labelled_sets_name_the_line(line: str, why: str, tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=why):
        load_queries(str(path))
