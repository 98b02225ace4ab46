"""The memory planner: DeepSpeed's estimators per ZeRO stage/offload, fits, and the choice."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from domainllm.train.plan import GiB, Hardware, ModelSize, options, recommend
from tests.conftest import domainllm_cmd


def test_a_model_that_fits_nowhere_else_gets_zero3_with_offload() -> None:
    # 40B on one 80 GiB GPU: even its bf16 weights (80 GB) do not fit, so only ZeRO-3 with
    # the parameters offloaded to CPU memory does
    opts = options(ModelSize.from_count(40e9), Hardware(80 * GiB, 1, 1, cpu_mem_bytes=2048 * GiB))
    best = recommend(opts)
    assert best is not None and best.zero_stage == 3 and best.offload_params == "cpu"
    assert [o.name for o in opts if o.fits] == [best.name]
    # 13B: ZeRO-2 with the optimizer on the CPU is enough (and faster)
    best13 = recommend(options(ModelSize.from_count(13e9), Hardware(80 * GiB, 1, 1, cpu_mem_bytes=1024 * GiB)))
    assert best13 is not None and (best13.zero_stage, best13.offload_optimizer) == (2, "cpu")


def test_enough_gpus_need_no_offload_and_tiny_models_fit_plainly() -> None:
    best = recommend(options(ModelSize.from_count(7e9), Hardware(80 * GiB, 8, 1)))
    assert best is not None and best.offload_optimizer == "none" and best.zero_stage in (1, 2)
    tiny = recommend(options(ModelSize(1_300_000, 500_000, 128, 4), Hardware(16 * GiB)))
    assert tiny is not None and tiny.zero_stage == 0


def test_nvme_only_when_the_nodes_have_it() -> None:
    size, hw = ModelSize.from_count(70e9), dict(gpu_mem_bytes=80 * GiB, cpu_mem_bytes=1024 * GiB)
    assert recommend(options(size, Hardware(**hw))) is None
    best = recommend(options(size, Hardware(**hw, nvme=True)))
    assert best is not None and best.offload_optimizer == "nvme"


def test_model_size_from_a_config_folder_counts_exactly(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)  # fmt: skip
    cfg.save_pretrained(tmp_path)
    size = ModelSize.from_config_dir(str(tmp_path))
    assert size.params == sum(p.numel() for p in LlamaForCausalLM(cfg).parameters())
    assert size.largest_layer_params == 1000 * 64 and size.num_layers == 2


def test_plan_command(tmp_path: Path) -> None:
    proc = subprocess.run(domainllm_cmd("plan", "--params", "40B", "--gpu-mem", "80GiB", "--cpu-mem", "2TiB", "--json"),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["recommended"] == "ZeRO-3 + CPU offload (optimizer + params)"
    assert len(doc["options"]) == 8 and doc["params"] == 40_000_000_000
    proc = subprocess.run(domainllm_cmd("plan", "--model", str(tmp_path), "--gpu-mem", "80GiB"), capture_output=True, text=True)
    assert proc.returncode == 2 and "no config.json" in proc.stderr


@pytest.mark.parametrize("bad", ["80 bananas", "-1"])
def test_bad_sizes_are_refused(bad: str) -> None:
    proc = subprocess.run(domainllm_cmd("plan", "--params", "7B", "--gpu-mem", bad), capture_output=True, text=True)
    assert proc.returncode == 2 and "expected a size like 80GiB" in proc.stderr
