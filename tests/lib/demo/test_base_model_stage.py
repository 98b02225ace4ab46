"""The demo base model: a real tokenizer and a tiny Llama that learns, saved for HF."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from domainllm.spec import load_spec
from domainllm.stages.runner import run_stage
from domainllm.tracking import tracking_uri

pytestmark = pytest.mark.slow


def test_builds_a_model_that_learned_and_loads_with_transformers(tiny_spec: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = load_spec(tiny_spec)
    run_stage(spec, "ingest", "bm")
    m = run_stage(spec, "base_model", "bm").manifest
    assert m.metrics["heldout_loss_after"] < m.metrics["heldout_loss_before"] - 1.0
    assert m.metrics["loss_last"] < m.metrics["loss_first"]
    assert m.inputs["stage:ingest"]  # lineage: which ingest output it was trained on

    path = m.info["model_path"]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "llama" and len(tok) == 512 == model.config.vocab_size
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    assert set(model.generation_config.eos_token_id) == {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}

    text = "def parse(line):\n    return line.split()\n"
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level BPE round-trips

    chat = [{"role": "user", "content": "What does bless do?"}, {"role": "assistant", "content": "It ties a ref."}]
    rendered = tok.apply_chat_template(chat, tokenize=False)
    assert rendered == "<|im_start|>user\nWhat does bless do?<|im_end|>\n<|im_start|>assistant\nIt ties a ref.<|im_end|>\n"
    enc = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, keep in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if keep]
    assert tok.decode(masked) == "It ties a ref.<|im_end|>"
    prompt = tok.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")

    ids = tok("import os\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids.shape[1]

    mlflow.set_tracking_uri(tracking_uri(spec))
    history = mlflow.MlflowClient().get_metric_history(m.mlflow_run_id, "train_loss")
    assert len(history) == 40 and history[-1].value < history[0].value
    assert "loss.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(m.mlflow_run_id)}


def test_named_base_model_must_be_a_model_folder(home: Path, tmp_path: Path, corpora: Path) -> None:
    from domainllm.data.records import InputError
    from tests.conftest import tiny_spec_doc, write_spec

    doc = tiny_spec_doc(corpora)
    doc["base_model"] = {"path": str(tmp_path)}
    with pytest.raises(InputError, match="not a Hugging Face model folder .*no config.json"):
        run_stage(load_spec(write_spec(tmp_path / "s.yaml", doc)), "base_model", "named")
