"""The flywheel's stages in a row over a request log written by the gateway's log store:
counts at every step, pairs from feedback into a new dataset version with lineage, the
report, and the trigger task's decision (skip below the threshold, emit above it, once)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from domainllm.artifacts import RunLayout
from domainllm.artifacts.fs import write_bytes_atomic
from domainllm.flywheel.dataset import PreferenceDataset, dataset_root
from domainllm.serve.gateway.exchange import Exchange
from domainllm.serve.gateway.store import LogStore
from domainllm.spec import load_spec
from domainllm.stages.names import FLYWHEEL_STAGES
from domainllm.stages.runner import StageError, run_stage
from tests.conftest import tiny_spec_doc, write_spec

T0 = dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC).timestamp()
QUESTIONS = ["How do I sort numbers in Perl?", "What does List::MoreUtils uniq do?", "How can I read a CSV file in Perl?",
             "How do I trim whitespace from a string in Perl?"]  # fmt: skip


USER = "p-00000000000000aa"


def _log(root: str) -> None:
    store = LogStore(root, batch_s=0.05)
    try:
        for i, q in enumerate(QUESTIONS):
            body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {i}"}, "finish_reason": "stop"}]})
            store.submit(Exchange(f"r{i}", T0 + i, "chat.completions", "stable", "1", {"messages": [{"role": "user", "content": q}]},
                                  status=200, body=body.encode(), principal=USER))  # fmt: skip
        store.feedback({"request_id": "r0", "principal": USER, "rating": "down", "preferred": "Use sort { $a <=> $b } @numbers.",
                        "received_at": T0 + 5})  # fmt: skip
        store.feedback({"request_id": "r1", "principal": USER, "rating": "down", "preferred": "It removes duplicates, keeping the first.",
                        "received_at": T0 + 6})  # fmt: skip
        store.feedback({"request_id": "r2", "principal": USER, "rating": "up", "received_at": T0 + 7})
        assert store.flush()
    finally:
        store.close()


def _trigger(spec_path: Path, run_id: str):
    from domainllm_operators.assets import PREFERENCES
    from domainllm_operators.flywheel import TriggerTrainingOperator

    events = {PREFERENCES: SimpleNamespace(extra={})}
    result = TriggerTrainingOperator(spec_path=str(spec_path), run_id=run_id).execute({"outlet_events": events})
    return result, events[PREFERENCES].extra


def test_a_night_of_logs_becomes_a_dataset_version(home: Path, corpora: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(corpora)
    doc["flywheel"] = {"min_new_pairs": 3, "sampling": {"models": []}}  # pairs from the users' feedback alone
    spec_path = write_spec(tmp_path / "spec.yaml", doc)
    spec = load_spec(spec_path)
    _log(str(Path(spec.artifact_root) / "serving-logs"))

    layout = RunLayout(spec.artifact_root, "fw1")
    with pytest.raises(StageError, match="has no window: start it with `domainllm run start --param window_start="):
        run_stage(spec, "harvest", "fw1")
    layout.fs.makedirs(layout.run_dir, exist_ok=True)
    write_bytes_atomic(layout.fs, layout.params_path(), json.dumps({"window_start": "2026-11-25", "window_end": "2026-11-26"}).encode())
    manifests = {stage: run_stage(spec, stage, "fw1").manifest for stage in FLYWHEEL_STAGES}
    assert manifests["harvest"].counts["harvested"] == 4 and manifests["harvest"].counts["with_feedback"] == 3
    assert manifests["curate"].counts["kept"] == 4
    assert manifests["sample"].counts["candidates"] == 4 + 2  # the served answers and the users' better ones
    # the served answers were rated down; the users' own answers, checked by the rules, are the better side
    assert manifests["label"].counts["pairs"] == 2 and manifests["label"].counts["pairs.rules"] == 2
    prefs = manifests["preferences"]
    assert prefs.info["version"] == "v000001" and prefs.counts["pending"] == 2 and not prefs.info["ready"]
    report = Path(layout.stage_dir("flywheel_report"), "report.md").read_text()
    assert "| answered user requests | 4 |" in report and "Not enough new pairs to train (2 < 3)" in report
    assert f"| {USER} | 4 | 3 | 0 | 0 | - |" in report  # who the data came from, pseudonymously
    assert Path(layout.stage_dir("flywheel_report"), "report.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(AirflowSkipException, match="2 new pairs since the last training round; 3 trigger one"):
        _trigger(spec_path, "fw1")

    dataset = PreferenceDataset(dataset_root(spec))
    pairs = dataset.read().to_pylist()
    assert {p["chosen"][0]["content"] for p in pairs} == {"Use sort { $a <=> $b } @numbers.", "It removes duplicates, keeping the first."}
    assert {p["rejected"][0]["content"] for p in pairs} == {"answer 0", "answer 1"} and {p["principal"] for p in pairs} == {USER}
    assert dataset.latest()["lineage"]["window"] == {"start": "2026-11-25T00:00:00+00:00", "end": "2026-11-26T00:00:00+00:00"}

    # the same window again, with one more request: the prompts already paired are repeats of the
    # dataset's; the new one's feedback makes 3 pending pairs, which trigger a training round, once
    write_bytes_atomic(layout.fs, RunLayout(spec.artifact_root, "fw2").params_path(),
                       json.dumps({"window_start": "2026-11-25", "window_end": "2026-11-26"}).encode())  # fmt: skip
    store = LogStore(str(Path(spec.artifact_root) / "serving-logs"), batch_s=0.05)
    try:
        body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "no idea"}, "finish_reason": "stop"}]})
        store.submit(Exchange("r9", T0 + 100, "chat.completions", "stable", "1",
                              {"messages": [{"role": "user", "content": "How do I reverse a list in Perl?"}]}, status=200, body=body.encode(),
                              principal=USER))  # fmt: skip
        store.feedback({"request_id": "r9", "principal": USER, "rating": "down", "preferred": "Use reverse @list.", "received_at": T0 + 101})
        assert store.flush()
    finally:
        store.close()
    second = {stage: run_stage(spec, stage, "fw2").manifest for stage in FLYWHEEL_STAGES}
    assert second["curate"].counts["dropped.duplicate"] == 2 and second["curate"].counts["kept"] == 3  # r0, r1 were paired before
    assert second["preferences"].info["version"] == "v000002" and second["preferences"].info["ready"]
    result, extra = _trigger(spec_path, "fw2")
    assert extra == result and extra["version"] == "v000002" and extra["spec"] == str(spec_path)
    assert extra["run_id"] == "round-v000002" and "stages" not in extra  # nothing serves yet: a fresh run of every stage
    with pytest.raises(AirflowSkipException, match="already handed to training"):
        _trigger(spec_path, "fw2")
