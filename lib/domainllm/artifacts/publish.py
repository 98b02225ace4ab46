"""Write outputs to a private staging folder, then publish them; the manifest goes last.

Whatever point a stage is killed at, readers see either the previous finished output
or nothing finished: a folder counts as finished only when its manifest exists, and the
manifest is written after every output file is in place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import fsspec
import pyarrow.parquet as pq

from domainllm.artifacts.fs import is_local, join, sha256_file, write_bytes_atomic
from domainllm.artifacts.manifest import MANIFEST_NAME, Manifest, OutputFile


class Staging:
    """A private folder a stage writes into before publishing."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        self.fs = fs
        self.path = path
        fs.makedirs(path, exist_ok=True)

    def file(self, relpath: str) -> str:
        full = join(self.path, relpath)
        self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        return full

    @contextlib.contextmanager
    def local_dir(self, relpath: str) -> Iterator[str]:
        """A local folder for tools that only write to disk (e.g. `save_pretrained`);
        uploaded into staging afterwards when the artifact root is an object store."""
        if is_local(self.fs):
            target = self.file(join(relpath, ".keep")).rsplit("/", 1)[0]
            os.makedirs(target, exist_ok=True)
            yield target
            return
        with tempfile.TemporaryDirectory(prefix="domainllm-") as tmp:
            yield tmp
            self.fs.put(tmp + "/", join(self.path, relpath), recursive=True)

    def describe_outputs(self) -> list[OutputFile]:
        outputs = []
        for full in sorted(self.fs.find(self.path)):
            rel = full[len(self.path.rstrip("/")) + 1 :]
            if rel == MANIFEST_NAME or rel.rsplit("/", 1)[-1] == ".keep":
                continue
            size = self.fs.size(full)
            records = None
            if rel.endswith(".parquet"):
                with self.fs.open(full, "rb") as fh:
                    records = pq.ParquetFile(fh).metadata.num_rows
            outputs.append(OutputFile(path=rel, sha256=sha256_file(self.fs, full), bytes=size, records=records))
        return outputs


def new_staging(fs: fsspec.AbstractFileSystem, staging_root: str, name: str) -> Staging:
    """A fresh staging folder; leftovers of killed attempts for the same name are removed."""
    if fs.exists(staging_root):
        for old in fs.ls(staging_root, detail=False):
            if old.rstrip("/").rsplit("/", 1)[-1].startswith(f"{name}."):
                fs.rm(old, recursive=True)
    return Staging(fs, join(staging_root, f"{name}.{uuid.uuid4().hex[:12]}"))


def publish(staging: Staging, final_dir: str, manifest: Manifest, trash_root: str) -> None:
    """Move staged outputs to `final_dir` and write the manifest last."""
    fs = staging.fs
    old_manifest = join(final_dir, MANIFEST_NAME)
    if fs.exists(old_manifest):
        fs.rm(old_manifest)  # from here on the old output no longer looks finished
    if fs.exists(final_dir):
        if is_local(fs):
            os.makedirs(trash_root, exist_ok=True)
            trash = join(trash_root, f"{final_dir.rstrip('/').rsplit('/', 1)[-1]}.{uuid.uuid4().hex[:8]}")
            os.rename(final_dir, trash)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            fs.rm(final_dir, recursive=True)
    fs.makedirs(final_dir.rsplit("/", 1)[0], exist_ok=True)
    if is_local(fs):
        os.rename(staging.path, final_dir)  # atomic on one filesystem
    else:
        fs.mv(staging.path, final_dir, recursive=True)
    write_bytes_atomic(fs, join(final_dir, MANIFEST_NAME), manifest.to_json())
