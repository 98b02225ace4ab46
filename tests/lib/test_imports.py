"""Every stage module and data package imports on its own in a fresh interpreter: an import
cycle only shows when a module is the first one loaded, which is how a stage process starts."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from domainllm.stages.registry import _IMPLEMENTATIONS

MODULES = sorted({impl.split(":")[0] for impl in _IMPLEMENTATIONS.values()} | {
    "domainllm.data.compliance", "domainllm.data.decontam", "domainllm.data.dedup", "domainllm.data.mix",
    "domainllm.data.ngrams", "domainllm.data.pack", "domainllm.data.pii.step", "domainllm.data.quality",
    "domainllm.k8s.render", "domainllm.k8s.status", "domainllm.k8s.validate",
})  # fmt: skip


def _import_first(module: str) -> str | None:
    code = "import importlib, sys\nimportlib.import_module(sys.argv[1])\n"
    proc = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, timeout=120)
    return None if proc.returncode == 0 else f"{module}: {proc.stderr.strip().splitlines()[-1]}"


def test_each_module_imports_first() -> None:
    # one interpreter per module (each must survive being imported first), two at a time
    with ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(_import_first, MODULES) if f]
    assert not failures, "\n".join(failures)
