"""`quantize` and `eval_quantized` after a promotion: the variants this machine can export are
exported in the quantization environment (AWQ is tried: it fails, with the library's reason,
where there is no accelerator), stored and registered with their lineage, scored against the
full model with the cost of each quantization reported, and checked in vLLM. A variant whose
vLLM worker dies (here made to die by SIGILL, as an unsupported instruction kills it) is
recorded as not servable with the evidence, and the stage succeeds."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from domainllm.artifacts import RunLayout
from domainllm.serve.vllm_server import vllm_python
from domainllm.spec import load_spec
from domainllm.stages.runner import run_stage
from domainllm_operators.demo_cycle import quantized_summary
from tests.conftest import tiny_spec_doc, write_spec
from tests.lib.evals.vllm_helpers import kill_engine_once_ready
from tests.lib.quant.test_worker import needs_quant
from tests.lib.stages.test_cpt_stage import UPSTREAM

pytestmark = [pytest.mark.slow, needs_quant]
TRAINED = (*UPSTREAM, "cpt", "sft_data", "sft", "dpo_data", "dpo", "kb_index", "eval_perplexity", "eval_code", "eval_choice", "eval_judge",
           "eval_qa", "gate")  # fmt: skip


def test_variants_are_registered_scored_and_served(home: Path, corpora: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from domainllm.evals.registry import CHAMPION, COMPLETE

    doc = tiny_spec_doc(corpora)
    doc["base_model"]["demo"]["num_heads"] = 1  # head size 32: what vLLM's CPU attention needs
    doc["quantize"] = {"variants": [
        {"name": "w8a8", "format": "compressed-tensors", "scheme": "W8A8"},
        {"name": "w4a16", "format": "compressed-tensors", "scheme": "W4A16", "method": "gptq", "group_size": 32},
        {"name": "w4a16-awq", "format": "compressed-tensors", "scheme": "W4A16", "method": "awq", "group_size": 32},
        {"name": "gguf-q4_0", "format": "gguf", "type": "q4_0"}],
        "calibration": {"samples": 8, "seq_len": 64}, "gguf": {"pre_tokenizer": "gpt-2"},
        "suites": ["perplexity", "choice"], "serve_check": vllm_python() is not None}  # fmt: skip
    spec_path = write_spec(tmp_path / "spec.yaml", doc)
    spec = load_spec(spec_path)
    for stage in TRAINED:
        run_stage(spec, stage, "q")
    layout = RunLayout(spec.artifact_root, "q")
    promoted = layout.read_manifest("gate").info

    quantized = run_stage(spec, "quantize", "q").manifest
    variants = dict(quantized.info["variants"])
    awq = variants.pop("w4a16-awq")
    assert awq["status"] == "ok" or (awq["status"] == "failed" and awq["reason"]), awq
    assert {n: v["status"] for n, v in variants.items()} == {"w8a8": "ok", "w4a16": "ok", "gguf-q4_0": "ok"}
    awq_ok = awq["status"] == "ok"
    assert quantized.info["source"] == promoted["registered_path"]
    assert quantized.counts == {"variants": 3 + awq_ok, "skipped": 0, "failed": 1 - awq_ok}
    client = mlflow.MlflowClient()
    for name in ("w8a8", "w4a16", "gguf-q4_0"):
        registered = variants[name]["registered"]
        mv = client.get_model_version_by_alias(f"tiny-{name}", CHAMPION)
        assert str(mv.version) == registered["version"] and mv.source == registered["path"]
        assert mv.tags["domainllm.quantized_from"] == f"tiny/{promoted['version']}" and mv.tags["domainllm.run_id"] == "q"
        assert mv.tags["domainllm.lib.llmcompressor"] and mv.tags["domainllm.device"] == "cpu"
        assert (Path(registered["path"]) / COMPLETE).exists()
    assert client.get_model_version_by_alias("tiny-w4a16", CHAMPION).tags["domainllm.quant.method"] == "gptq"
    report = (Path(layout.stage_dir("quantize")) / "variants.md").read_text()
    assert f"| w4a16-awq | compressed-tensors | {awq['status']} |" in report and "| gguf-q4_0 | gguf | ok |" in report
    assert report.startswith("Exported on ")

    killed = kill_engine_once_ready(monkeypatch, signal.SIGILL, times=1)  # the first variant checked: w8a8
    scored = run_stage(spec, "eval_quantized", "q").manifest
    assert scored.info["roles"] == ["full", "w8a8", "w4a16", *(["w4a16-awq"] if awq_ok else []), "gguf-q4_0"]
    for role in scored.info["roles"]:
        assert f"{role}.perplexity.domain.loss" in scored.metrics and f"{role}.choice.general.correct" in scored.metrics
    cost = scored.metrics["w8a8.perplexity.domain.loss.cost"]
    assert cost == pytest.approx(scored.metrics["w8a8.perplexity.domain.loss"] - scored.metrics["full.perplexity.domain.loss"], abs=1e-9)
    text = (Path(layout.stage_dir("eval_quantized")) / "quantized.md").read_text()
    assert "| metric | items | full | w8a8 | w4a16 | gguf-q4_0 |" in text and "Cost of each quantization" in text
    assert (Path(layout.stage_dir("eval_quantized")) / "quantized.png").read_bytes()[:4] == b"\x89PNG"
    tags = client.get_model_version_by_alias("tiny-gguf-q4_0", CHAMPION).tags
    assert float(tags["domainllm.eval.perplexity.domain.loss"]) == pytest.approx(scored.metrics["gguf-q4_0.perplexity.domain.loss"], rel=1e-5)
    assert "domainllm.cost.perplexity.domain.loss" in tags
    if vllm_python() is not None:
        checks = scored.info["serve_checks"]
        assert killed and "gguf-q4_0" not in checks
        dead = checks["w8a8"]  # not servable, with the evidence; the stage went on
        assert dead["status"] == "failed" and dead["servable"] == "no" and dead["evidence"]["crash"]["signal"] == "SIGILL", dead
        assert "SIGILL" in dead["reason"] and scored.counts["not_servable"] >= 1
        w4a16 = checks["w4a16"]  # what this machine's vLLM makes of it: served, or a failure with its evidence
        assert w4a16["status"] == "ok" or (w4a16["status"] == "failed" and w4a16["evidence"]["log_tail"]), w4a16
        assert "| w8a8 | no | " in text.split("Served by vLLM on this machine")[1]
        mv = client.get_model_version_by_alias("tiny-w8a8", CHAMPION)
        assert mv.tags["domainllm.servable"] == "no" and "SIGILL" in mv.tags["domainllm.servable.reason"]
        assert mlflow.get_run(scored.mlflow_run_id).data.tags["domainllm.servable.w8a8"] == "no"
        summary = quantized_summary(str(spec_path), "q")  # what `make demo` prints at its end
        assert "w8a8           vLLM cannot serve it: vLLM's engine died: SIGILL" in summary
        assert "gguf-q4_0      exported (gguf: for llama.cpp/ollama, not vLLM)" in summary
        assert ("w4a16-awq      vLLM" if awq_ok else "w4a16-awq      not exported: ") in summary

    # a forced rerun exports again but registers nothing new: the same export is the same version
    again = run_stage(spec, "quantize", "q", force=True).manifest
    assert {n: v.get("registered", {}).get("version") for n, v in again.info["variants"].items()} == \
           {n: v.get("registered", {}).get("version") for n, v in quantized.info["variants"].items()}  # fmt: skip
    assert len(client.search_model_versions("name = 'tiny-w8a8'")) == 1
