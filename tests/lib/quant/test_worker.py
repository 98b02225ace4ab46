"""The export worker in the real quantization environment (`make quant-env`): every export
that runs on a CPU is made from a tiny model, read back and scored; what needs a GPU or a
missing tool is skipped with the reason, and a bad setting fails with one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from domainllm.quant.runner import QuantEnvMissing, quant_python, run_worker
from tests.lib.evals.vllm_helpers import tiny_chat_model


def _has_quant_env() -> bool:
    try:
        quant_python()
    except QuantEnvMissing:
        return False
    return True


needs_quant = pytest.mark.skipif(not _has_quant_env(), reason="no quantization environment: run `make quant-env`")
pytestmark = [pytest.mark.slow, needs_quant]

VARIANTS = [
    {"name": "w8a8", "format": "compressed-tensors", "scheme": "W8A8", "method": "rtn", "group_size": None},
    {"name": "w4a16", "format": "compressed-tensors", "scheme": "W4A16", "method": "gptq", "group_size": 32},
    {"name": "fp8", "format": "compressed-tensors", "scheme": "FP8_DYNAMIC", "method": "rtn", "group_size": None},
    {"name": "awq", "format": "compressed-tensors", "scheme": "W4A16", "method": "awq", "group_size": 32},
    {"name": "bad-group", "format": "compressed-tensors", "scheme": "W4A16", "method": "rtn", "group_size": 48},
    {"name": "gguf-q8_0", "format": "gguf", "type": "q8_0"},
    {"name": "gguf-q4_0", "format": "gguf", "type": "q4_0"},
    {"name": "gguf-q4_k_m", "format": "gguf", "type": "q4_k_m"},
]


def _loss(model_dir: str, reference: str, text: str) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domainllm.quant.load import evaluable

    with evaluable(model_dir, reference) as path:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            return float(model(input_ids=ids, labels=ids).loss)


def test_every_cpu_export_is_made_read_back_and_close_to_the_full_model(tmp_path: Path) -> None:
    import gguf

    model = tiny_chat_model(tmp_path / "model")
    text = "sub hello { return 'world'; } my %h = (a => 1); print join(', ', @list);"
    calibration = tmp_path / "calibration.jsonl"
    calibration.write_text("".join(json.dumps({"text": f"{text} # {i}"}) + "\n" for i in range(8)))
    out = tmp_path / "out"
    job = {"model": model, "out": str(out), "variants": VARIANTS, "ignore": ["lm_head"], "seq_len": 64,
           "calibration": str(calibration), "pre_tokenizer": "gpt-2"}  # fmt: skip
    results = {r["name"]: r for r in run_worker(job, str(tmp_path / "job.json"))["variants"]}

    assert {n: r["status"] for n, r in results.items()} == {
        "w8a8": "ok", "w4a16": "ok", "fp8": "ok", "awq": "skipped", "bad-group": "failed",
        "gguf-q8_0": "ok", "gguf-q4_0": "ok", "gguf-q4_k_m": "skipped"}  # fmt: skip
    assert "needs a GPU" in results["awq"]["reason"] and not (out / "awq").exists()
    assert "group_size 48 does not divide" in results["bad-group"]["reason"] and "quantize.variants[bad-group]" in results["bad-group"]["reason"]
    assert "llama-cpp-python" in results["gguf-q4_k_m"]["reason"]
    for name in ("w8a8", "w4a16", "fp8"):
        config = json.loads((out / name / "config.json").read_text())["quantization_config"]
        assert config["quant_method"] == "compressed-tensors", name
    assert json.loads((out / "w4a16" / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] == 4

    types = {}
    for name, expected in (("gguf-q8_0", gguf.GGMLQuantizationType.Q8_0), ("gguf-q4_0", gguf.GGMLQuantizationType.Q4_0)):
        reader = gguf.GGUFReader(str(out / name / "model.gguf"))
        types[name] = {t.name: t.tensor_type for t in reader.tensors}
        assert types[name]["blk.0.ffn_down.weight"] == expected, name
        assert types[name]["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32  # norms stay full precision
        assert (out / name / "Modelfile").read_text() == "FROM ./model.gguf\n"
    assert results["gguf-q4_0"]["bytes"] < results["gguf-q8_0"]["bytes"]

    full = _loss(model, model, text)
    for name in ("w8a8", "w4a16", "fp8", "gguf-q8_0", "gguf-q4_0"):
        loss = _loss(str(out / name), model, text)
        assert math.isfinite(loss) and abs(loss - full) < 0.25 * full + 0.05, (name, loss, full)


def test_a_missing_environment_says_how_to_make_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    monkeypatch.setenv("DOMAINLLM_QUANT_PYTHON", str(tmp_path / "nope" / "python"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llmcompressor" else real(name, *a))
    with pytest.raises(QuantEnvMissing, match=r"make quant-env.*DOMAINLLM_QUANT_PYTHON|is not an executable"):
        quant_python()
