"""DeepSpeed's native ops, probed before training needs them. DeepSpeed JIT-compiles an op
with ninja the first time it is used (into TORCH_EXTENSIONS_DIR), for this CPU (-march=native,
a SIMD width read from cpuinfo): the optimizer (fused_adam; cpu_adam when the optimizer is
offloaded), async_io for NVMe offload, and on CPU the shared-memory comm op as the ranks join.
Without a compiler, or when the build or the built code does not suit this machine, a stage
would die with a ninja log or a native crash, minutes in.

So the stage asks first: a child process (PYTHONFAULTHANDLER=1) asks DeepSpeed whether each
op is compatible here (its own check: libaio for async_io), builds or loads it and runs one
tiny step. Each op's outcome is a probe (capabilities.Probes), cached for this machine, the op,
the DeepSpeed and torch versions and the compiler, with the evidence when it fails."""

from __future__ import annotations

import contextlib
import ctypes.util
import fcntl
import importlib.metadata
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from domainllm.capabilities import Outcome, Probes, crash_in_log, describe_exit
from domainllm.capabilities.crash import TRANSIENT, exit_signal, last_exception

log = logging.getLogger(__name__)

PROBE = "deepspeed-op"
BUILDERS = {"cpu_adam": "CPUAdamBuilder", "fused_adam": "FusedAdamBuilder", "async_io": "AsyncIOBuilder",
            "deepspeed_shm_comm": "ShareMemCommBuilder"}  # fmt: skip
# DeepSpeed goes without it where it is incompatible (plain torch.distributed collectives)
OPTIONAL = frozenset({"deepspeed_shm_comm"})
ALTERNATIVE = {
    "cpu_adam": "set training.deepspeed.offload_optimizer: none",
    "async_io": "offload to cpu instead of nvme (training.deepspeed.offload_optimizer / offload_params)",
    "fused_adam": "run without DeepSpeed (training.deepspeed.zero_stage: auto keeps it off on CPU)",
}
FIX = {
    "build": "install a C++ compiler (build-essential; or point CXX at one)",
    "incompatible": "install what DeepSpeed names",
    "crash": "its native code, built for this CPU, does not run here (`ds_report`: DeepSpeed's view of the machine)",
}
MARK = "ds-op:"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIMEOUT_S = 900.0


def needed_ops(config: dict[str, Any] | None, *, world: int = 1) -> list[str]:
    """The ops DeepSpeed will build for this (resolved) config in a job of `world` processes.
    The engine's AdamW is DeepSpeedCPUAdam when the optimizer is offloaded (cpu or nvme), else
    FusedAdam; NVMe offload needs async_io; joining a process group (every DeepSpeed run, or any
    multi-process one, through deepspeed.init_distributed) builds the shared-memory comm op."""
    ops = ["deepspeed_shm_comm"] if config is not None or world > 1 else []
    if config is None:
        return ops
    zero = config.get("zero_optimization", {})
    optimizer = zero.get("offload_optimizer", {}).get("device", "none")
    params = zero.get("offload_param", {}).get("device", "none")
    if config.get("optimizer"):
        ops.append("cpu_adam" if optimizer in ("cpu", "nvme") else "fused_adam")
    if "nvme" in (optimizer, params):
        ops.append("async_io")
    return ops


def op_problem(config: dict[str, Any] | None, *, world: int = 1) -> str | None:
    """None when every op the config needs builds and runs here; else what fails and the fix
    (ops failing alike, as without a compiler, in one sentence)."""
    failed: dict[tuple[str, str], list[str]] = {}
    records = check_ops(needed_ops(config, world=world))
    for op, record in records.items():
        if record["status"] != "ok":
            failed.setdefault((record.get("evidence", {}).get("kind", ""), record["reason"]), []).append(op)
    alone = sum(map(len, failed.values())) == 1
    return " ".join(explain(ops, records[ops[0]], alternative=alone) for ops in failed.values()) or None


def check_ops(ops: list[str], *, refresh: bool = False, timeout_s: float = TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Each op's probe record here: {status: ok | failed, reason, evidence, cached, ...}. The
    ops not cached are tried in one child (another if one kills it). The ranks of a job on one
    machine take turns: the first probes, the others read its outcomes."""
    tried: dict[str, Outcome] = {}

    def attempt(op: str) -> Outcome:
        if op not in tried:  # this op and the ones after it, in one child
            tried.update(_try(ops[ops.index(op):], timeout_s))
        return tried[op]

    probes = Probes()
    with _one_at_a_time(probes.root):
        return {op: probes.run(PROBE, subject(op), lambda op=op: attempt(op), refresh=refresh) for op in ops}


def subject(op: str) -> dict[str, Any]:
    """What the op's build depends on, besides the machine: versions, compiler, build flags."""
    cxx = os.environ.get("CXX", "c++")
    out: dict[str, Any] = {"op": op, "deepspeed": _version("deepspeed"), "torch": _version("torch"),
                           "cxx": f"{cxx}: {_tool_version(cxx)}", "nvcc": _tool_version("nvcc"),
                           "cflags": os.environ.get("CFLAGS", ""), "ldflags": os.environ.get("LDFLAGS", "")}  # fmt: skip
    if op == "async_io":
        out["libaio"] = ctypes.util.find_library("aio")
    return out


def explain(ops: list[str], record: dict[str, Any], *, alternative: bool = True) -> str:
    """`DeepSpeed's cpu_adam op cannot be used on this machine: <cause>; <fix>, or <alternative>.`"""
    fix = FIX.get(record.get("evidence", {}).get("kind"), "its log's last lines are in the evidence")
    other = ALTERNATIVE.get(ops[0]) if alternative and len(ops) == 1 else None
    names = f"{ops[0]} op" if len(ops) == 1 else f"{', '.join(ops[:-1])} and {ops[-1]} ops"
    return (f"DeepSpeed's {names} cannot be used on this machine: {record['reason']}; {fix}"
            + (f", or {other}" if other else "") + " (the evidence: `domainllm capabilities`).")  # fmt: skip


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _tool_version(cmd: str) -> str:
    path = shutil.which(cmd)
    if path is None:
        return "not found"
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unusable ({exc})"
    if proc.returncode != 0:
        return f"--version {describe_exit(proc.returncode)}"
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return (lines[-1] if cmd.endswith("nvcc") else lines[0]) if lines else "unknown"  # nvcc: its release line


@contextlib.contextmanager
def _one_at_a_time(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{PROBE}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _command(ops: list[str]) -> list[str]:
    return [sys.executable, "-m", "domainllm.train.ds_ops", *ops]


def _try(ops: list[str], timeout_s: float) -> dict[str, Outcome]:
    """The outcomes of the ops the child got to: every op it finished, and the one it died on."""
    t0 = time.monotonic()
    log.info("probing DeepSpeed's %s op(s) in a child (a first build takes a minute or more)", ", ".join(ops))
    with subprocess.Popen(_command(ops), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          env={**os.environ, "PYTHONFAULTHANDLER": "1"}, start_new_session=True) as proc:  # fmt: skip
        try:
            text, code = proc.communicate(timeout=timeout_s)[0], proc.returncode
        except subprocess.TimeoutExpired:  # the child and its compilers
            os.killpg(proc.pid, signal.SIGKILL)
            text, code = proc.communicate()[0], None
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    seconds = round(time.monotonic() - t0, 1)
    text = _ANSI.sub("", text)
    header, segments = _segments(text)
    accelerator = _marks(header).get("accelerator")
    outcomes: dict[str, Outcome] = {}
    for op, segment in segments.items():
        outcomes[op] = _outcome(op, segment, code, seconds)
        outcomes[op].evidence["accelerator"] = accelerator
    if not segments:  # it died before trying any (DeepSpeed does not import, say): the first op carries it
        outcomes[ops[0]] = _outcome(ops[0], text, code, seconds)
    return outcomes


def _segments(text: str) -> tuple[str, dict[str, str]]:
    """The child's output before its first op, and each op's part (from `ds-op: OP begin`)."""
    header: list[str] = []
    parts: dict[str, list[str]] = {}
    current = header
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == MARK and words[2] == "begin":
            current = parts.setdefault(words[1], [])
        current.append(line)
    return "\n".join(header), {op: "\n".join(lines) for op, lines in parts.items()}


def _marks(segment: str) -> dict[str, str]:
    """`ds-op: [OP] WORD rest` lines as {WORD: rest}."""
    marks: dict[str, str] = {}
    for line in segment.splitlines():
        if line.startswith(MARK):
            words = line[len(MARK):].split(None, 2)
            word, rest = (words[1], words[2:]) if len(words) > 1 and words[0] in BUILDERS else (words[0], words[1:])
            marks[word] = " ".join(rest)
    return marks


def _outcome(op: str, segment: str, code: int | None, seconds: float) -> Outcome:
    marks = _marks(segment)
    evidence: dict[str, Any] = {"flags": marks.get("flags") or None}
    if "ran" in marks or "unused" in marks:
        return Outcome("ok", evidence={**evidence, **({"unused": marks["unused"]} if "unused" in marks else {})},
                       seconds=seconds)  # fmt: skip
    evidence["log_tail"] = "\n".join(segment.splitlines()[-40:])
    if "incompatible" in marks:  # in DeepSpeed's words: its warnings as it checked
        said = [line.split("[WARNING]", 1)[1].strip() for line in segment.splitlines() if "[WARNING]" in line]
        return Outcome("failed", reason=f"DeepSpeed says it cannot build it here: {' '.join(said) or marks['incompatible']}",
                       evidence={**evidence, "kind": "incompatible"}, seconds=seconds)  # fmt: skip
    if "raised" in marks and "loaded" in marks:
        return Outcome("failed", reason=f"it built, but one step failed: {last_exception(segment)}",
                       evidence={**evidence, "kind": "step"}, seconds=seconds)  # fmt: skip
    if "raised" in marks:
        return Outcome("failed", reason=f"it does not build: {build_errors(segment)}",
                       evidence={**evidence, "kind": "build"}, seconds=seconds)  # fmt: skip
    phase = "running one step" if "loaded" in marks else "building or loading it"
    if code is None:
        return Outcome("failed", reason=f"building and trying it took too long ({phase})",
                       evidence={**evidence, "kind": "timeout"}, seconds=seconds, transient=True)  # fmt: skip
    crash, signum = crash_in_log(segment), exit_signal(code)
    what = crash.summary() if crash else describe_exit(code) if signum else last_exception(segment) or describe_exit(code)
    evidence.update(kind="crash" if crash or signum else "exit", exit_code=code, exit=describe_exit(code),
                    crash=crash.to_dict() if crash else None)  # fmt: skip
    return Outcome("failed", reason=f"{what}, {phase}", evidence=evidence, seconds=seconds,
                   transient=signum in TRANSIENT)  # fmt: skip


def build_errors(text: str, limit: int = 3) -> str:
    """The compiler's and ninja's error lines of a failed JIT build (not its command lines, not
    Python's traceback), else the exception that ended it."""
    found: list[str] = []
    skip = ("FAILED:", "[", "File ", "Traceback", "raise ", "RuntimeError:", "subprocess.", MARK)
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(skip) or " -MMD " in s:
            continue
        low = s.lower()
        if ("error" in low or "not found" in low or "no such file" in low) and s[:300] not in found:
            found.append(s[:300])
    return " | ".join(found[-limit:]) or last_exception(text) or "no error in its log"


# --- the child: python -m domainllm.train.ds_ops OP... ------------------------------------------


def _child(ops: list[str]) -> int:
    import traceback

    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    print(f"{MARK} accelerator {accelerator.device_name()}", flush=True)
    for op in ops:
        print(f"{MARK} {op} begin", flush=True)
        try:
            result = _exercise(op, accelerator)
        except Exception:
            traceback.print_exc()
            result = "raised"
        print(f"{MARK} {op} {result}", flush=True)
    return 0


def _exercise(op: str, accelerator: Any) -> str:
    """Builds or loads `op` and runs one tiny step: `ran`, or why it was not (`incompatible ...`)."""
    import torch

    builder = accelerator.create_op_builder(BUILDERS[op])
    usable = builder is not None and type(builder).__name__ != "NotImplementedBuilder"
    if not usable or not builder.is_compatible(verbose=True):
        why = (getattr(builder, "error_log", None) or "").strip() if usable else f"no such op on {accelerator.device_name()}"
        return f"{'unused' if op in OPTIONAL else 'incompatible'} {why or 'not compatible'}"
    with contextlib.suppress(Exception):  # what DeepSpeed compiles it with here (-march, SIMD width from cpuinfo)
        print(f"{MARK} {op} flags {' '.join(builder.strip_empty_entries(builder.cxx_args()))}", flush=True)
    module = builder.load()
    print(f"{MARK} {op} loaded", flush=True)
    if op in ("cpu_adam", "fused_adam"):
        from deepspeed.ops.adam import DeepSpeedCPUAdam, FusedAdam

        # 1027 weights: whole SIMD vectors and a remainder; Adam's first step moves each by lr
        p = torch.nn.Parameter(torch.ones(1027, device="cpu" if op == "cpu_adam" else accelerator.device_name()))
        p.grad = torch.full_like(p, 0.5)
        (DeepSpeedCPUAdam if op == "cpu_adam" else FusedAdam)([p], lr=0.1).step()
        if not torch.allclose(p.detach().cpu(), torch.full((1027,), 0.9), atol=1e-3):
            raise RuntimeError(f"one {op} step gave wrong weights: {p.detach().cpu()[:4].tolist()}, not 0.9")
    elif op == "async_io":
        module.aio_handle(1024 * 1024, 8, False, False, 1)
    elif op == "deepspeed_shm_comm":
        module.vector_kernel_level()
    return "ran"


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
