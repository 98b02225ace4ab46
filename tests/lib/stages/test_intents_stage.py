"""`intents`: the classifier of `serving.intents` trained on labelled prompts (inline and from
a file), cross-validated, saved so the gateway loads it safely; it routes new prompts; bad
labelled data says where it is wrong; no routes, nothing to train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from domainllm.artifacts import RunLayout
from domainllm.knowledge.embedding import Embedder
from domainllm.serve.intents import IntentClassifier
from domainllm.spec import load_spec
from domainllm.spec.knowledge import BUILTIN_EMBEDDING
from domainllm.stages.runner import StageError, run_stage
from tests.conftest import tiny_spec_doc, write_spec

ROUTES = [
    {"name": "code_help", "examples": ["my perl script dies with an error", "how do I sort a hash by value in perl",
                                       "regex to match an email address", "why does this loop never end",
                                       "read a file line by line", "what does chomp do"],
     "retrieval": {"k": 3}},
    {"name": "chitchat", "examples": ["hi there", "how are you today", "thanks a lot", "good night", "you are funny", "hello!"],
     "retrieval": {"enabled": False}, "system": "Be friendly and short."},
]  # fmt: skip


def test_the_classifier_is_trained_reported_and_routes_new_prompts(home: Path, corpora: Path, tmp_path: Path) -> None:
    extra = tmp_path / "more.jsonl"
    extra.write_text("".join(json.dumps({"text": t, "intent": i}) + "\n" for t, i in
                             [("perl warns about an uninitialized value", "code_help"), ("see you tomorrow", "chitchat")]))  # fmt: skip
    doc = tiny_spec_doc(corpora)
    doc["serving"] = {"enabled": False, "intents": {"routes": ROUTES, "examples": str(extra), "min_confidence": 0.4}}
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    m = run_stage(spec, "intents", "i").manifest
    assert m.counts == {"examples": 14, "routes": 2} and m.info["labels"] == ["chitchat", "code_help"]
    assert m.metrics["intents.cv_accuracy"] >= 0.8 and m.info["report"]["folds"] == 5
    out = Path(RunLayout(spec.artifact_root, "i").stage_dir("intents"))
    assert "5-fold cross-validated accuracy" in (out / "intents.md").read_text()
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"

    classifier = IntentClassifier.load(m.info["classifier"])
    vectors = Embedder(BUILTIN_EMBEDDING).encode(["my perl program crashes on line 3", "hey, good morning!"])
    assert [intent for intent, _ in classifier.predict(vectors)] == ["code_help", "chitchat"]
    assert all(0.5 < p <= 1 for _, p in classifier.predict(vectors))
    assert run_stage(spec, "intents", "i").skipped
    assert isinstance(classifier.predict(np.zeros((1, 384), dtype=np.float32))[0][1], float)


def test_no_routes_nothing_to_train_and_bad_examples_say_where(home: Path, corpora: Path, tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "spec.yaml", tiny_spec_doc(corpora)))
    assert run_stage(spec, "intents", "n").manifest.info == {"enabled": False}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "hello", "intent": "smalltalk"}) + "\n")
    doc = tiny_spec_doc(corpora)
    doc["serving"] = {"enabled": False, "intents": {"routes": ROUTES, "examples": str(bad)}}
    with pytest.raises(StageError, match=r"serving.intents.examples: .*line 1: `intent` 'smalltalk' is not a route"):
        run_stage(load_spec(write_spec(tmp_path / "spec.yaml", doc)), "intents", "n")
    doc["serving"] = {"enabled": False, "intents": {"routes": [ROUTES[0], {"name": "empty"}]}}
    with pytest.raises(StageError, match=r"route\(s\) \['empty'\] have no labelled prompt"):
        run_stage(load_spec(write_spec(tmp_path / "spec.yaml", doc)), "intents", "n")


def test_impossible_intent_settings_are_refused_at_load(tmp_path: Path, corpora: Path) -> None:
    from domainllm.spec import SpecError

    for intents, why in (({"routes": [ROUTES[0]]}, "at least two routes"),
                         ({"routes": ROUTES, "fallback": "nope"}, "'nope' is not a route"),
                         ({"routes": [*ROUTES, {"name": "default"}]}, "`default` is the name"),
                         ({"routes": [{**ROUTES[0], "retrieval": {"sources": ["nowhere"]}}, ROUTES[1]]}, r"unknown source\(s\) \['nowhere'\]"),
                         ({"routes": [{**ROUTES[0], "retrieval": {"template": "no placeholder"}}, ROUTES[1]]}, r"\{context\} placeholder")):  # fmt: skip
        doc = tiny_spec_doc(corpora)
        doc["serving"] = {"enabled": False, "intents": intents}
        with pytest.raises(SpecError, match=why):
            load_spec(write_spec(tmp_path / "spec.yaml", doc))
