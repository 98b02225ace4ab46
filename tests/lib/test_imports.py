"""Every stage module and data package imports on its own in a fresh interpreter: an import
cycle only shows when a module is the first one loaded, which is how a stage process starts."""

from __future__ import annotations

import subprocess
import sys

from domainllm.stages.registry import _IMPLEMENTATIONS

MODULES = sorted({impl.split(":")[0] for impl in _IMPLEMENTATIONS.values()} | {
    "domainllm.data.compliance", "domainllm.data.decontam", "domainllm.data.dedup", "domainllm.data.mix",
    "domainllm.data.ngrams", "domainllm.data.pack", "domainllm.data.pii.step", "domainllm.data.quality",
})  # fmt: skip


def test_each_module_imports_first() -> None:
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    failures = []
    for module in MODULES:  # one interpreter per module: each must survive being imported first
        proc = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            failures.append(f"{module}: {proc.stderr.strip().splitlines()[-1]}")
    assert not failures, "\n".join(failures)
