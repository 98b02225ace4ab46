"""Model folders that may live on an object store, made local for libraries that need a path."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator

from domainllm.artifacts.fs import is_local, url_to_fs


@contextlib.contextmanager
def local_model(location: str) -> Iterator[str]:
    fs, path = url_to_fs(location)
    if is_local(fs):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="domainllm-model-") as tmp:
        fs.get(path.rstrip("/") + "/", tmp, recursive=True)
        yield tmp
