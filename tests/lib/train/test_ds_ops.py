"""DeepSpeed's native ops, probed before a training stage needs them: which ops a config needs,
the real probe of the shared-memory comm op here (built once into the tests'
TORCH_EXTENSIONS_DIR, which the ZeRO tests use too, then cached per machine), a machine without a C++ compiler (the stage fails naming the cause and the fix,
no ninja log), and a built op that dies by SIGILL (a stand-in child) named with its frame."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from domainllm.train import ds_ops
from domainllm.train.deepspeed_config import ZeroChoice, deepspeed_config
from domainllm.train.ds_ops import check_ops, needed_ops, op_problem


def test_the_ops_a_config_needs() -> None:
    def ops(choice: ZeroChoice | None, world: int = 1) -> list[str]:
        return needed_ops(deepspeed_config(choice, bf16=False) if choice else None, world=world)

    assert ops(None) == []
    assert ops(None, world=2) == ["deepspeed_shm_comm"]  # joining the group goes through DeepSpeed
    assert ops(ZeroChoice(2)) == ["deepspeed_shm_comm", "fused_adam"]
    assert ops(ZeroChoice(2, "cpu")) == ["deepspeed_shm_comm", "cpu_adam"]
    assert ops(ZeroChoice(3, "cpu", "nvme")) == ["deepspeed_shm_comm", "cpu_adam", "async_io"]
    assert ops(ZeroChoice(3, "nvme", "nvme")) == ["deepspeed_shm_comm", "cpu_adam", "async_io"]


def test_a_failed_build_is_told_by_the_compiler_error_lines_not_the_commands() -> None:
    log = """ds-op: cpu_adam begin
[1/3] c++ -MMD -MF cpu_adam.o.d -DTORCH_EXTENSION_NAME=cpu_adam -O3 -march=native -D__AVX512__ -c cpu_adam.cpp -o cpu_adam.o
FAILED: cpu_adam.o
c++ -MMD -MF cpu_adam.o.d -DTORCH_EXTENSION_NAME=cpu_adam -O3 -march=native -D__AVX512__ -c cpu_adam.cpp -o cpu_adam.o
cc1plus: error: bad value 'znver9' for '-march=' switch
ninja: build stopped: subcommand failed.
Traceback (most recent call last):
  File "deepspeed/ops/op_builder/builder.py", line 613, in jit_load
RuntimeError: Error building extension 'cpu_adam': [1/3] c++ -MMD -MF cpu_adam.o.d
ds-op: cpu_adam raised"""
    assert ds_ops.build_errors(log) == "cc1plus: error: bad value 'znver9' for '-march=' switch"
    outcome = ds_ops._outcome("cpu_adam", log, 0, 1.0)
    assert outcome.status == "failed" and outcome.evidence["kind"] == "build" and not outcome.transient
    assert outcome.reason == "it does not build: cc1plus: error: bad value 'znver9' for '-march=' switch"


# A stand-in for the probe's child: every op loads; cpu_adam's step dies by SIGILL, as a kernel
# built with an instruction this CPU lacks does. Each start is logged, to count the children.
FAKE_CHILD = """
import os, signal, sys
def adam_step():
    os.kill(os.getpid(), signal.SIGILL)
with open(os.environ["FAKE_CHILD_LOG"], "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
print("ds-op: accelerator cpu", flush=True)
for op in sys.argv[1:]:
    print(f"ds-op: {op} begin", flush=True)
    print(f"ds-op: {op} flags -march=native -D__AVX256__", flush=True)
    print(f"ds-op: {op} loaded", flush=True)
    if op == "cpu_adam":
        adam_step()
    print(f"ds-op: {op} ran", flush=True)
"""


def test_an_op_that_dies_by_sigill_is_named_with_its_frame(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    children = tmp_path / "children.log"
    monkeypatch.setenv("FAKE_CHILD_LOG", str(children))
    monkeypatch.setattr(ds_ops, "_command", lambda ops: [sys.executable, "-c", FAKE_CHILD, *ops])
    records = check_ops(["cpu_adam", "fused_adam"])
    adam = records["cpu_adam"]
    assert adam["status"] == "failed" and not adam["cached"]
    assert adam["reason"] == "SIGILL (illegal instruction: native code used a CPU instruction this machine lacks or has not enabled) in <string>:4 in adam_step, running one step"  # fmt: skip
    assert adam["evidence"]["kind"] == "crash" and adam["evidence"]["crash"]["signal"] == "SIGILL"
    assert adam["evidence"]["flags"] == "-march=native -D__AVX256__"
    assert records["fused_adam"]["status"] == "ok"  # tried in a second child, after the first died
    assert children.read_text().splitlines() == ["cpu_adam fused_adam", "fused_adam"]
    # a crash is a fact about this machine: cached, no child the second time
    again = check_ops(["cpu_adam", "fused_adam"])
    assert [r["cached"] for r in again.values()] == [True, True] and len(children.read_text().splitlines()) == 2
    problem = op_problem(deepspeed_config(ZeroChoice(2, "cpu"), bf16=False))
    assert problem is not None and problem.startswith("DeepSpeed's cpu_adam op cannot be used on this machine: SIGILL")
    assert "in <string>:4 in adam_step" in problem and "set training.deepspeed.offload_optimizer: none" in problem


@pytest.mark.slow
def test_the_real_probe_of_an_op_here_then_from_the_cache(home: Path) -> None:
    """Builds deepspeed_shm_comm into the tests' TORCH_EXTENSIONS_DIR the first time (the ZeRO
    tests of test_distributed_training.py load the same build; cpu_adam would cost a ~100 s
    compile for this test alone), then loads it: ok here, or failed with its evidence on a
    machine that cannot."""
    t0 = time.monotonic()
    record = check_ops(["deepspeed_shm_comm"])["deepspeed_shm_comm"]
    first = time.monotonic() - t0
    assert record["status"] in ("ok", "failed") and not record["cached"]
    assert record["subject"]["op"] == "deepspeed_shm_comm" and record["subject"]["deepspeed"] != "not installed"
    if record["status"] == "ok":
        assert record["evidence"]["accelerator"]
    else:
        assert record["reason"] and record["evidence"]["kind"] and record["evidence"]["log_tail"]
    t0 = time.monotonic()
    again = check_ops(["deepspeed_shm_comm"])["deepspeed_shm_comm"]
    assert again["cached"] and again["status"] == record["status"] and again["probed_at"] == record["probed_at"]
    assert time.monotonic() - t0 < min(2.0, first)


@pytest.mark.slow
def test_a_machine_without_a_compiler_fails_the_stage_naming_the_cause_and_the_fix(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATH holds ninja and nothing else: no c++ (torch's cpp_extension compiles with $CXX, else
    `c++`), as in a slim image without build-essential. A fresh TORCH_EXTENSIONS_DIR, so no
    op built before hides it. The stage stops before training, with one clear error."""
    from transformers import LlamaConfig

    from domainllm.artifacts import RunLayout
    from domainllm.artifacts.manifest import Manifest
    from domainllm.artifacts.publish import Staging
    from domainllm.spec import load_spec
    from domainllm.stages.base import StageContext
    from domainllm.stages.runner import StageError
    from domainllm.stages.sft import SftStage
    from tests.conftest import tiny_spec_doc, write_spec

    ninja = shutil.which("ninja") or shutil.which("ninja", path=os.path.dirname(sys.executable))
    if ninja is None:
        pytest.skip("no ninja here")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ninja").symlink_to(ninja)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "torch_extensions"))

    doc = tiny_spec_doc(tmp_path / "corpora")
    doc["training"]["deepspeed"] = {"zero_stage": 2, "offload_optimizer": "cpu"}
    spec = load_spec(write_spec(tmp_path / "spec.yaml", doc))
    model = tmp_path / "cpt-model"
    LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(model)
    layout = RunLayout(spec.artifact_root, "r")
    ctx = StageContext(spec=spec, run_id="r", layout=layout, out=Staging(layout.fs, str(tmp_path / "staging")),
                       upstream={"cpt": Manifest.model_construct(info={"model_path": str(model)})})  # fmt: skip
    with pytest.raises(StageError) as err:
        SftStage().run(ctx)
    message = str(err.value)
    assert message.startswith("DeepSpeed's deepspeed_shm_comm and cpu_adam ops cannot be used on this machine: it does not build:")
    assert "c++: not found" in message and "install a C++ compiler (build-essential" in message
    assert "Traceback" not in message and "ninja -v" not in message and len(message) < 600
    record = check_ops(["cpu_adam"])["cpu_adam"]  # the evidence, kept for `domainllm capabilities`
    assert record["cached"] and record["subject"]["cxx"] == "c++: not found" and "FAILED" in record["evidence"]["log_tail"]
