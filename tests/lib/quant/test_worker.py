"""The export worker in the real quantization environment (`make quant-env`): every export
that runs on a CPU is made from a tiny model, read back and scored; a method this machine
cannot run fails with the library's reason (tried, not assumed), a missing tool is skipped
with the reason, a bad setting fails with one, and a worker killed by a native crash takes
only its variant with it."""

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

    awq = results.pop("awq")  # llmcompressor's AWQ runs where it finds an accelerator: tried, not assumed
    assert awq["status"] == "ok" or (awq["status"] == "failed" and awq["reason"] and not (out / "awq").exists()), awq
    assert {n: r["status"] for n, r in results.items()} == {
        "w8a8": "ok", "w4a16": "ok", "fp8": "ok", "bad-group": "failed",
        "gguf-q8_0": "ok", "gguf-q4_0": "ok", "gguf-q4_k_m": "skipped"}  # fmt: skip
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


# The worker as the runner starts it (`python -m domainllm.quant.worker JOB`), with one export
# replaced by a native crash: the process kills itself with SIGILL, as an unsupported instruction would.
_CRASHING_WORKER = """#!/bin/sh
exec {python} -c '
import os, signal, sys
import domainllm.quant.compressed as c
real = c.export
def export(model, variant, *args, **kwargs):
    if variant["name"] == "doomed":
        os.kill(os.getpid(), signal.SIGILL)
    return real(model, variant, *args, **kwargs)
c.export = export
from domainllm.quant.worker import main
sys.exit(main(sys.argv[1:]))' "$3"
"""


def test_a_worker_killed_by_a_crash_loses_only_that_variant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wrapper = tmp_path / "python"
    wrapper.write_text(_CRASHING_WORKER.format(python=quant_python()))
    wrapper.chmod(0o755)
    monkeypatch.setenv("DOMAINLLM_QUANT_PYTHON", str(wrapper))
    model = tiny_chat_model(tmp_path / "model")
    out = tmp_path / "out"
    variants = [{"name": "doomed", "format": "compressed-tensors", "scheme": "W8A8", "method": "rtn", "group_size": None},
                {"name": "gguf-q8_0", "format": "gguf", "type": "q8_0"}]  # fmt: skip
    job = {"model": model, "out": str(out), "variants": variants, "ignore": ["lm_head"], "seq_len": 64, "pre_tokenizer": "gpt-2"}
    results = run_worker(job, str(tmp_path / "job.json"))

    doomed, q8 = results["variants"]
    assert doomed["name"] == "doomed" and doomed["status"] == "failed" and "SIGILL" in doomed["reason"], doomed
    assert doomed["evidence"]["crash"]["signal"] == "SIGILL" and doomed["evidence"]["exit_code"] == -4
    assert any("in export" in frame for frame in doomed["evidence"]["crash"]["frames"]) and not (out / "doomed").exists()
    assert q8["name"] == "gguf-q8_0" and q8["status"] == "ok" and (out / "gguf-q8_0" / "model.gguf").exists()
    assert results["environment"]["versions"]["llmcompressor"]
