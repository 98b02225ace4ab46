"""A 50 MB document, an empty text and text that is all punctuation go through every
per-document step without crashing (ingest rejects empty text; steps must survive anyway)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from domainllm.data.compliance import ComplianceFilter
from domainllm.data.decontam import Decontaminator
from domainllm.data.decontam.index import EvalIndex
from domainllm.data.pii.step import PiiStep
from domainllm.data.quality import QualityFilter
from domainllm.spec.compliance import ComplianceConfig
from domainllm.spec.decontam import DecontamConfig
from domainllm.spec.pii import PiiConfig
from domainllm.spec.quality import QualityConfig


def rows() -> list[dict]:
    rng = random.Random(0)
    words = ["perl", "hash", "scalar", "regex", "module", "package", "return", "list"]
    big = " ".join(rng.choice(words) for _ in range(50 * 1024 * 1024 // 6))
    return [{"id": "big", "text": big, "source": "s", "kind": "text", "lang": "en"},
            {"id": "empty", "text": "", "source": "s", "kind": "text", "lang": "en"},
            {"id": "punct", "text": "!?.,;:-" * 500, "source": "s", "kind": "code", "lang": "und"}]  # fmt: skip


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return rows()


def test_quality(docs) -> None:
    verdicts = QualityFilter(QualityConfig()).batch(docs)
    assert len(verdicts) == 3 and verdicts[1] is not None  # empty text: too few words


def test_pii(docs) -> None:
    step = PiiStep(PiiConfig())
    batch = [dict(r) for r in docs]
    assert step.batch(batch) == [None] * 3 and batch[0]["text"] == docs[0]["text"]


def test_compliance(docs) -> None:
    assert ComplianceFilter(ComplianceConfig()).batch(docs) == [None] * 3


def test_decontamination(docs) -> None:
    index = EvalIndex(np.array([1, 2, 3], dtype=np.uint64), np.zeros(3, np.int32), ["x"], (13,))
    assert Decontaminator(DecontamConfig(), index).batch(docs) == [None] * 3
