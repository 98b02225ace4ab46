"""`quantize` and `eval_quantized` after a promotion: the CPU-capable variants are exported in
the quantization environment, stored and registered with their lineage, scored against the
full model with the cost of each quantization reported, and served by vLLM's CPU build."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainllm.artifacts import RunLayout
from domainllm.serve.vllm_server import vllm_python
from domainllm.spec import load_spec
from domainllm.stages.runner import run_stage
from tests.conftest import tiny_spec_doc, write_spec
from tests.lib.quant.test_worker import needs_quant
from tests.lib.stages.test_cpt_stage import UPSTREAM

pytestmark = [pytest.mark.slow, needs_quant]
TRAINED = (*UPSTREAM, "cpt", "sft_data", "sft", "dpo_data", "dpo", "kb_index", "eval_perplexity", "eval_code", "eval_choice", "eval_judge",
           "eval_qa", "gate")  # fmt: skip


def test_variants_are_registered_scored_and_served(home: Path, corpora: Path, tmp_path: Path) -> None:
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
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    for stage in TRAINED:
        run_stage(spec, stage, "q")
    layout = RunLayout(spec.artifact_root, "q")
    promoted = layout.read_manifest("gate").info

    quantized = run_stage(spec, "quantize", "q").manifest
    variants = quantized.info["variants"]
    assert {n: v["status"] for n, v in variants.items()} == {"w8a8": "ok", "w4a16": "ok", "w4a16-awq": "skipped", "gguf-q4_0": "ok"}
    assert "needs a GPU" in variants["w4a16-awq"]["reason"]
    assert quantized.info["source"] == promoted["registered_path"] and quantized.counts == {"variants": 3, "skipped": 1}
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
    assert "| w4a16-awq | compressed-tensors | skipped |" in report and "| gguf-q4_0 | gguf | ok |" in report

    scored = run_stage(spec, "eval_quantized", "q").manifest
    assert scored.info["roles"] == ["full", "w8a8", "w4a16", "gguf-q4_0"]
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
        assert scored.info["serve_checks"]["w8a8"]["status"] == "ok" and scored.info["serve_checks"]["w4a16"]["status"] == "ok"
        assert "gguf-q4_0" not in scored.info["serve_checks"]

    # a forced rerun exports again but registers nothing new: the same export is the same version
    again = run_stage(spec, "quantize", "q", force=True).manifest
    assert {n: v.get("registered", {}).get("version") for n, v in again.info["variants"].items()} == \
           {n: v.get("registered", {}).get("version") for n, v in variants.items()}  # fmt: skip
    assert len(client.search_model_versions("name = 'tiny-w8a8'")) == 1
