"""This machine as kernel libraries see it: CPU vendor, model and instruction-set flags, and
the GPUs. Its key (a hash of all of it) names the machine in the probe cache, so a cached
outcome is never reused on a machine that differs in anything a kernel could depend on."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import shutil
import subprocess
from typing import Any

# The flags kernel libraries dispatch on (shown in reports; the key hashes every flag).
KERNEL_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "sve", "asimd")  # fmt: skip


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _gpus() -> list[str]:
    """GPU names from nvidia-smi or rocm-smi, without importing a framework."""
    for tool, args in (("nvidia-smi", ["--query-gpu=name", "--format=csv,noheader"]), ("rocm-smi", ["--showproductname"])):
        if shutil.which(tool) is None:
            continue
        try:
            out = subprocess.run([tool, *args], capture_output=True, text=True, timeout=20, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        names = [line.strip() for line in out.splitlines() if line.strip() and "=" not in line]
        if names:
            return names
    return []


@functools.cache
def machine() -> dict[str, Any]:
    """{arch, vendor, cpu, flags (the kernel-relevant ones present), flags_sha, gpus}."""
    info = _cpuinfo()
    flags = (info.get("flags") or info.get("Features") or "").split()
    return {
        "arch": platform.machine(),
        "vendor": info.get("vendor_id") or info.get("CPU implementer", ""),
        "cpu": info.get("model name") or info.get("Model name") or platform.processor() or "unknown",
        "flags": [f for f in KERNEL_FLAGS if f in flags],
        "flags_sha": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16],
        "gpus": _gpus(),
    }


def machine_key() -> str:
    return hashlib.sha256(json.dumps(machine(), sort_keys=True).encode()).hexdigest()[:16]


def describe() -> str:
    """`AMD EPYC (AuthenticAMD, x86_64; avx avx2 fma ...), no GPU` for reports and logs."""
    m = machine()
    gpus = ", ".join(m["gpus"]) or "no GPU"
    return f"{m['cpu']} ({m['vendor']}, {m['arch']}; {' '.join(m['flags']) or 'no kernel flags read'}), {gpus}"
