"""The eval stages after training: per-item rows for the candidate and the base (and the
champion once the registry has one), per-role means in the manifest and MLflow; bad eval
data stops the stage with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.runner import StageError, run_stage
from tests.conftest import tiny_spec_doc, write_spec
from tests.lib.evals.vllm_helpers import needs_vllm
from tests.lib.stages.test_cpt_stage import UPSTREAM

pytestmark = pytest.mark.slow
EVALS = ("eval_perplexity", "eval_code", "eval_choice", "eval_judge", "eval_qa")


def test_suites_score_candidate_base_and_then_the_champion(home: Path, corpora: Path, tmp_path: Path) -> None:
    import mlflow

    from domainllm.evals.registry import CHAMPION
    from domainllm.tracking import experiment_id

    doc = tiny_spec_doc(corpora)
    doc["evals"]["retrieval"] = {"enabled": True, "suites": ["qa"], "policy": {"k": 2, "max_chars": 300}}
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in (*UPSTREAM, "cpt", "sft_data", "sft", "dpo_data", "dpo", "kb_index"):
        run_stage(spec, stage, "e")
    layout = RunLayout(spec.artifact_root, "e")
    assert run_stage(spec, "eval_judge", "e").manifest.info == {"enabled": False}  # no judge configured
    # reference answers, by the candidate as it is and with the knowledge base in its prompts
    qa = run_stage(spec, "eval_qa", "e").manifest
    assert set(qa.info["roles"]) == {"candidate", "candidate_rag", "base"} and qa.counts["items.qa.domain.f1"] == 12
    rows = pq.read_table(Path(layout.stage_dir("eval_qa")) / "items.parquet").to_pylist()
    rag = [json.loads(r["detail"]) for r in rows if r["role"] == "candidate_rag"]
    assert len(rag) == 12 and {d["backend"] for d in rag} == {"transformers_rag"}
    assert all(0 <= qa.metrics[f"{role}.qa.domain.f1"] <= 1 for role in ("candidate", "candidate_rag", "base"))
    for stage in EVALS[:3]:
        m = run_stage(spec, stage, "e").manifest
        assert set(m.info["roles"]) == {"candidate", "base"}
        rows = pq.read_table(Path(layout.stage_dir(stage)) / "items.parquet").to_pylist()
        assert {r["role"] for r in rows} == {"candidate", "base"} and m.counts["items"] == len(rows)
    perplexity = layout.read_manifest("eval_perplexity")
    assert perplexity.metrics["candidate.perplexity.domain.loss"] < perplexity.metrics["base.perplexity.domain.loss"]
    code = layout.read_manifest("eval_code")
    assert code.counts["items.code.perl.pass_at_1"] == 8 and "candidate.code.perl.pass_at_1" in code.metrics
    choice = layout.read_manifest("eval_choice")
    assert choice.counts["items.choice.general.correct"] == 24
    assert 0 <= choice.metrics["candidate.choice.general.correct"] <= 1
    history = mlflow.MlflowClient().get_run(choice.mlflow_run_id).data.metrics
    assert "candidate.choice.general.correct" in history

    # a champion in the registry: the suites rerun (a new input) and score it too
    experiment_id(spec)
    client = mlflow.MlflowClient()
    client.create_registered_model(spec.name)
    version = client.create_model_version(spec.name, source=layout.read_manifest("sft").info["model_path"])
    client.set_registered_model_alias(spec.name, CHAMPION, version.version)
    again = run_stage(spec, "eval_choice", "e")
    assert not again.skipped and set(again.manifest.info["roles"]) == {"candidate", "base", "champion"}


def test_bad_eval_data_is_a_clear_error(home: Path, corpora: Path, tmp_path: Path) -> None:
    bad = tmp_path / "mc.jsonl"
    bad.write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": "Z"}) + "\n")
    doc = tiny_spec_doc(corpora)
    doc["evals"] = {"choice": {"sets": [{"name": "mine", "path": str(bad)}]}}
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in (*UPSTREAM, "cpt", "sft_data", "sft", "dpo_data", "dpo"):
        run_stage(spec, stage, "b")
    with pytest.raises(StageError, match=r"evals.choice.sets: mc.jsonl line 1: field `answer` is 'Z'"):
        run_stage(spec, "eval_choice", "b")
    doc["evals"] = {"choice": {"sets": [{"name": "gone", "path": str(tmp_path / "missing.jsonl")}]}}
    with pytest.raises(StageError, match="evals.choice.sets: .*missing.jsonl"):
        run_stage(load_spec(write_spec(tmp_path / "spec.yaml", doc)), "eval_choice", "b")


def test_gate_promotes_a_better_model_and_rejects_a_degraded_one(home: Path, corpora: Path, tmp_path: Path) -> None:
    import mlflow

    from domainllm.evals.registry import CHALLENGER, CHAMPION
    from domainllm.tracking import experiment_id

    doc = tiny_spec_doc(corpora)
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in (*UPSTREAM, "cpt", "sft_data", "sft", "dpo_data", "dpo", "kb_index", *EVALS):
        run_stage(spec, stage, "g1")
    # first run: no champion yet, the base stands in; the trained model beats it on the domain
    passed = run_stage(spec, "gate", "g1").manifest
    assert passed.info["passed"] and passed.info["version"] == "1"
    experiment_id(spec)
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(spec.name, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(spec.name, CHALLENGER).version) == "1"
    source = Path(client.get_model_version_by_alias(spec.name, CHAMPION).source)  # a copy the rerun of a run id cannot touch
    assert source == Path(passed.info["registered_path"]) and source.parent.name == "tiny" and (source / "_COMPLETE").exists()
    gate_dir = Path(RunLayout(spec.artifact_root, "g1").stage_dir("gate"))
    decision = json.loads((gate_dir / "decision.json").read_text())
    assert decision["passed"] and any("base standing in" in r for r in decision["reasons"])
    table = (gate_dir / "comparison.md").read_text()
    assert "| metric | items | candidate | champion | base |" in table and "| perplexity.domain.loss |" in table
    assert {a.path for a in client.list_artifacts(passed.mlflow_run_id)} >= {"comparison.md", "comparison.png", "gate_decision.json"}

    # a deliberately degraded candidate: DPO with a learning rate that wrecks the model
    doc["training"]["dpo"]["optim"] = {"learning_rate": 1.0, "warmup_ratio": 0.0}
    bad = load_spec(write_spec(tmp_path / "bad.yaml", doc))
    for stage in (*UPSTREAM, "cpt", "sft_data", "sft", "dpo_data", "dpo", "kb_index", *EVALS):
        run_stage(bad, stage, "g2")
    assert set(RunLayout(bad.artifact_root, "g2").read_manifest("eval_perplexity").info["roles"]) == {"candidate", "base", "champion"}
    with pytest.raises(StageError, match=r"(?s)not promoted; the champion stays.*perplexity.domain.loss: candidate beats champion\?.*fails"):
        run_stage(bad, "gate", "g2")
    assert str(client.get_model_version_by_alias(spec.name, CHAMPION).version) == "1"
    runs = client.search_runs([experiment_id(spec)], filter_string="tags.`domainllm.gate` = 'failed'")
    assert len(runs) == 1  # the decision and its reasons are in MLflow
    # the first run again: its candidate is the champion now, nothing to decide
    assert run_stage(spec, "gate", "g1", force=True).manifest.info["already_champion"]


@needs_vllm
def test_judge_stage_and_a_judge_gate_rule_through_a_vllm_judge(home: Path, corpora: Path, tmp_path: Path, vllm_server) -> None:
    doc = tiny_spec_doc(corpora)
    doc["evals"] = {"judge": {"endpoint": vllm_server.base_url, "rubric": ["accuracy", "safety"], "decoding": {"max_new_tokens": 12}},
                    "gate": {"rules": [{"metric": "perplexity.domain.loss", "higher_is_better": False, "kind": "improve"},
                                       {"metric": "judge.accuracy", "higher_is_better": True, "margin": 4}]}}  # fmt: skip
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in (*UPSTREAM, "cpt", "sft_data", "sft", "dpo_data", "dpo", "kb_index", *EVALS):
        run_stage(spec, stage, "j")
    layout = RunLayout(spec.artifact_root, "j")
    judged = layout.read_manifest("eval_judge")
    assert judged.info["enabled"] and set(judged.info["roles"]) == {"candidate", "base"}
    assert judged.counts["items.judge.accuracy"] == 12 and judged.counts["unscored"] == 0
    assert 1 <= judged.metrics["candidate.judge.safety"] <= 5
    rows = pq.read_table(Path(layout.stage_dir("eval_judge")) / "items.parquet").to_pylist()
    assert len(rows) == 2 * 12 * 2 and all(json.loads(r["detail"])["answer"] is not None for r in rows)
    gate = run_stage(spec, "gate", "j").manifest
    assert gate.info["passed"] and "gate.judge.accuracy.champion.gain" in gate.metrics
