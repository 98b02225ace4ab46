"""Curation with the real scrubber, decontamination index and MinHash LSH: low-quality
prompts, eval prompts, repeats (tonight's and the dataset's) are dropped with the reason;
PII is scrubbed from prompts, answers and preferred answers."""

from __future__ import annotations

import json
from pathlib import Path

from domainllm.flywheel.curate import Curator
from domainllm.spec import load_spec
from tests.conftest import tiny_spec_doc, write_spec


def _row(rid: str, text: str, answer: str = "An answer.", preferred: str | None = None) -> dict:
    return {"request_id": rid, "prompt": [{"role": "user", "content": text}], "answer": answer, "preferred": preferred}


def test_what_must_not_be_trained_on_is_dropped_with_the_reason(corpora: Path, tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora)))
    known = ["How do I open a file for reading in Perl and loop over its lines?"]
    curator = Curator(spec, known)
    rows = [
        _row("ok", "How can I remove duplicate values from an array in Perl?"),
        _row("pii", "My card is 4111 1111 1111 1111, mail me at ann@example.org: how do I validate cards in Perl?",
             answer="Write to ann@example.org", preferred="Call 212-555-0187"),
        _row("short", "hi"),
        _row("noise", "1234 5678 9012 !!!! ???? ...."),
        _row("eval", "What does the List::Util module do?"),  # a built-in judge prompt, word for word
        _row("dup", "how can I remove duplicate values from an array in perl"),  # tonight's first prompt again
        _row("near", "How can I remove duplicate values from an array in Perl ?!"),
        _row("known", "How do I open a file for reading in Perl and loop over its lines"),  # already in the dataset
    ]
    result = curator.curate(rows)
    kept = {r["request_id"]: r for r in result.rows}
    assert set(kept) == {"ok", "pii"}
    reasons = {q["request_id"]: q["reason"] for q in result.quarantine}
    assert reasons == {"short": "too_short", "noise": "low_alpha", "eval": "eval_prompt", "dup": "duplicate",
                       "near": "duplicate", "known": "duplicate"}  # fmt: skip
    pii = kept["pii"]
    assert "4111" not in pii["prompt"][0]["content"] and "ann@example.org" not in pii["prompt"][0]["content"]
    assert "ann@example.org" not in pii["answer"] and "212-555-0187" not in pii["preferred"]
    assert result.counts["pii_scrubbed_prompts"] == 1 and result.counts["dropped.duplicate"] == 3
    assert all(len(r["prompt_hash"]) == 32 for r in result.rows)


def test_near_duplicates_and_eval_overlap(corpora: Path, tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora)))
    curator = Curator(spec)
    long = ("Please explain in detail how the Perl sort function compares numbers with the spaceship operator and "
            "how I would sort a large list of records by two keys at once")  # fmt: skip
    leaked = json.loads((corpora / "tiny-eval.jsonl").read_text())["answer"]  # data.decontamination's eval set
    rows = [_row("first", long), _row("near", long.replace("Please explain", "Explain") + " please"),
            _row("leak", f"Can you explain this? {leaked}")]  # fmt: skip
    result = curator.curate(rows)
    assert [r["request_id"] for r in result.rows] == ["first"]
    assert {q["request_id"]: q["reason"] for q in result.quarantine} == {"near": "near_duplicate", "leak": "eval_overlap"}
