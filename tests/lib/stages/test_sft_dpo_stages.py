"""CPT -> SFT -> DPO on the tiny model: SFT teaches the answers and where they end (the
model then stops at the end of its turn), DPO widens the chosen-vs-rejected reward margin,
and user-supplied examples are validated with bad records quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.runner import StageError, run_stage
from tests.conftest import tiny_spec_doc, write_spec
from tests.lib.stages.test_cpt_stage import UPSTREAM

pytestmark = pytest.mark.slow


def _end_of_turn_predicted(model_dir: str, examples: list[dict]) -> int:
    """How many reference answers the model would end right where they end (teacher forced)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    hits = 0
    for e in examples:
        ids = tok(tok.apply_chat_template(e["messages"], tokenize=False), add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        last = int((ids == end).nonzero()[-1])
        with torch.no_grad():
            hits += int(model(ids[None, :last]).logits[0, -1].argmax() == end)
    return hits


def _generate(model_dir: str, question: str, max_new_tokens: int = 48) -> list[int]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    enc = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)  # fmt: skip
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_cpt_sft_dpo_chain_learns_each_lesson(home: Path, corpora: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from mlflow import MlflowClient
    from transformers import AutoTokenizer

    from domainllm.tracking import tracking_uri

    doc = tiny_spec_doc(corpora)
    doc["training"]["sft"]["max_steps"] = 100  # long enough to learn where answers end
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in (*UPSTREAM, "cpt"):
        run_stage(spec, stage, "s")
    layout = RunLayout(spec.artifact_root, "s")
    data = run_stage(spec, "sft_data", "s").manifest
    assert data.counts["examples"] >= 15 and data.counts["kind.multi_turn"] >= 5
    examples = pq.read_table(Path(layout.stage_dir("sft_data")) / "examples" / "part-00000.parquet").to_pylist()

    # SFT: the loss drops, and the model learns where answers end
    sft = run_stage(spec, "sft", "s").manifest
    assert sft.info["started_from"] == layout.read_manifest("cpt").info["model_path"]
    assert sft.metrics["train_loss_last"] < 0.5 * sft.metrics["train_loss_first"]
    assert sft.metrics["eval_loss"] < sft.metrics["train_loss_first"]
    single = [e for e in examples if e["kind"] in ("what", "how")]
    before = _end_of_turn_predicted(layout.read_manifest("cpt").info["model_path"], single)
    after = _end_of_turn_predicted(sft.info["model_path"], single)
    assert before == 0 and after >= len(single) // 2, (before, after, len(single))
    # ... and generation stops there: the saved generation config ends on <|im_end|>
    tok = AutoTokenizer.from_pretrained(sft.info["model_path"])
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    gen_cfg = json.loads((Path(sft.info["model_path"]) / "generation_config.json").read_text())
    assert im_end in gen_cfg["eos_token_id"] and tok.eos_token_id in gen_cfg["eos_token_id"]
    stopped = [_generate(sft.info["model_path"], e["messages"][0]["content"]) for e in single if e["kind"] == "what"]
    assert any(len(g) < 48 and g[-1] == im_end for g in stopped)
    training = json.loads((Path(sft.info["model_path"]) / "training.json").read_text())
    assert training["training_arguments"]["assistant_only_loss"] is True and training["lineage"]["inputs"]["sft_data"] == data.fingerprint

    # DPO: chosen = reference answers, rejected = the CPT model's samples; the margin grows
    pairs = run_stage(spec, "dpo_data", "s").manifest
    assert pairs.counts["pairs"] >= 8
    dpo = run_stage(spec, "dpo", "s").manifest
    assert dpo.metrics["reward_margin_first"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert dpo.metrics["reward_margin_last"] > 0.3
    assert dpo.metrics["train_loss_last"] < dpo.metrics["train_loss_first"]
    client = MlflowClient(tracking_uri(spec))
    margins = client.get_metric_history(dpo.mlflow_run_id, "rewards.margins")
    assert len(margins) == dpo.counts["steps"] and max(m.value for m in margins) > 0.3
    artifacts = {a.path for a in client.list_artifacts(dpo.mlflow_run_id, "model")}
    assert "model/training.json" in artifacts

    # the other reference models: a frozen explicit copy, and LoRA's implicit one (no copy)
    for variant in ({"reference": "explicit"}, {"reference": "implicit", "lora": {"r": 8, "alpha": 16, "target_modules": ["all-linear"]},
                                                "optim": {"learning_rate": 1e-2}}):  # fmt: skip
        doc["training"]["dpo"].update(variant)
        m = run_stage(load_spec(write_spec(tmp_path / "spec.yaml", doc)), "dpo", "s").manifest
        assert m.metrics["reward_margin_last"] > 0.3, variant
        training = json.loads((Path(m.info["model_path"]) / "training.json").read_text())
        assert training["training_arguments"]["precompute_ref_log_probs"] is False
        assert (Path(m.info["model_path"]) / "adapter").exists() == ("lora" in variant)


def test_user_sft_data_is_validated_and_bad_records_quarantined(home: Path, corpora: Path, tmp_path: Path) -> None:
    data = tmp_path / "sft.jsonl"
    good = {"instruction": "Say hi.", "output": "Hi."}
    data.write_text("\n".join([json.dumps(good), '{"instruction": "x"', json.dumps({"messages": [{"role": "robot", "content": "?"}]})]) + "\n")
    doc = tiny_spec_doc(corpora)
    doc["training"]["sft"] = {"data": str(data)}
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    m = run_stage(spec, "sft_data", "u").manifest  # user data needs no upstream stage
    assert m.counts == {"records_in": 3, "quarantined": 2, "quarantined.invalid_json": 1, "quarantined.bad_role": 1,
                        "examples": 1, "kind.user": 1}  # fmt: skip
    quarantine = Path(RunLayout(spec.artifact_root, "u").stage_dir("sft_data")) / "quarantine" / "part-00000.parquet"
    assert quarantine.exists()

    data.write_text(json.dumps({"prompt": "no answer"}) + "\n")
    doc["training"]["sft"] = {"data": str(data), "format": "alpaca"}
    spec = load_spec(write_spec(tmp_path / "spec2.yaml", doc))
    with pytest.raises(StageError, match=r"training.sft.data: .* none of its 1 records is a valid example \(missing_field: 1\)"):
        run_stage(spec, "sft_data", "u2")
