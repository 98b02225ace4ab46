"""Continued pretraining on the packed data: the model learns, loads with transformers, and
a run killed mid-way (CPT, and SFT with its shuffled, packed examples) resumes from its
checkpoint and ends with the uninterrupted losses; the chat-vector option."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.runner import run_stage
from tests.conftest import domainllm_cmd, tiny_spec_doc, write_spec

pytestmark = pytest.mark.slow
UPSTREAM = ("ingest", "quality", "dedup_signatures", "dedup_buckets", "dedup_clusters", "dedup", "pii", "compliance",
            "decontaminate", "mix", "base_model", "pack")  # fmt: skip


def test_cpt_learns_and_saves_a_model(tiny_spec: Path, home: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = load_spec(tiny_spec)
    for stage in UPSTREAM:
        run_stage(spec, stage, "c")
    m = run_stage(spec, "cpt", "c").manifest
    assert m.counts["steps"] == 12
    assert m.metrics["train_loss_last"] < m.metrics["train_loss_first"]
    assert m.metrics["eval_loss"] < m.metrics["train_loss_first"]
    # held-out documents kept out of the mix: the domain is learned (perplexity falls from the base's)
    assert m.metrics["heldout.domain.ppl"] < m.metrics["start.heldout.domain.ppl"]
    assert {"heldout.general.ppl", "start.heldout.general.ppl"} <= set(m.metrics)
    model_dir = m.info["model_path"]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.vocab_size == len(tok)
    assert not Path(RunLayout(spec.artifact_root, "c").checkpoint_dir("cpt")).exists()  # removed once published
    assert run_stage(spec, "cpt", "c").skipped


@pytest.mark.parametrize("stage", ["cpt", "sft"])
def test_a_killed_run_resumes_and_matches_the_uninterrupted_losses(stage: str, home: Path, corpora: Path, tmp_path: Path) -> None:
    doc = tiny_spec_doc(corpora)
    doc["training"][stage]["max_steps"] = 24  # room to be killed well before the end
    tiny_spec = write_spec(tmp_path / "spec.yaml", doc)
    spec = load_spec(tiny_spec)
    for up in (*UPSTREAM, "cpt", "sft_data") if stage == "sft" else UPSTREAM:
        run_stage(spec, up, "k")
    layout = RunLayout(spec.artifact_root, "k")
    ckpt = Path(layout.checkpoint_dir(stage))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(domainllm_cmd("stage", "run", stage, "--spec", str(tiny_spec), "--run-id", "k"),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (ckpt / "checkpoint-4" / "trainer_state.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # maybe while a later checkpoint is half written: it must not be resumed
    proc.wait()
    assert layout.read_manifest(stage) is None
    resumed = run_stage(spec, stage, "k").manifest
    resumed_step = int(resumed.info["resumed_from"].rsplit("-", 1)[1])
    assert 4 <= resumed_step < 24 and resumed.counts["steps"] == 24

    straight = run_stage(spec, stage, "k", force=True).manifest  # the uninterrupted run
    assert straight.info["resumed_from"] is None
    assert resumed.metrics["train_loss_last"] == pytest.approx(straight.metrics["train_loss_last"], rel=1e-4)
    assert resumed.metrics["eval_loss"] == pytest.approx(straight.metrics["eval_loss"], rel=1e-4)
    # the resumed run's loss curve covers the steps before the kill too, and equals the straight one
    assert resumed.metrics["train_loss_first"] == pytest.approx(straight.metrics["train_loss_first"], rel=1e-4)


def test_chat_vector_option_adds_the_chat_delta_to_the_trained_model(tiny_spec: Path, home: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    spec = load_spec(tiny_spec)
    for stage in UPSTREAM:
        run_stage(spec, stage, "v")
    plain = AutoModelForCausalLM.from_pretrained(run_stage(spec, "cpt", "v").manifest.info["model_path"]).state_dict()
    # a "chat model" tuned from the same base: the base with every weight moved a little
    base_dir = RunLayout(spec.artifact_root, "v").read_manifest("base_model").info["model_path"]
    chat = AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in chat.parameters():
            p.add_(0.01 * torch.randn_like(p))
    chat.save_pretrained(tmp_path / "chat")
    base = AutoModelForCausalLM.from_pretrained(base_dir).state_dict()
    doc = yaml.safe_load(tiny_spec.read_text())
    doc["training"]["cpt"]["chat_vector"] = {"chat_model": str(tmp_path / "chat"), "base_model": base_dir, "scale": 0.5}
    m = run_stage(load_spec(write_spec(tiny_spec, doc)), "cpt", "v").manifest
    mixed = AutoModelForCausalLM.from_pretrained(m.info["model_path"]).state_dict()
    chat_sd = chat.state_dict()
    assert m.counts["chat_vector_params"] == sum(1 for n in mixed if "embed_tokens" not in n and "lm_head" not in n)
    name = "model.layers.0.self_attn.q_proj.weight"
    # same seed, same data: the trained weights are those of the plain run, plus half the chat delta
    assert torch.allclose(mixed[name], plain[name] + 0.5 * (chat_sd[name] - base[name]), atol=1e-6)
    assert torch.equal(mixed["model.embed_tokens.weight"], plain["model.embed_tokens.weight"])
