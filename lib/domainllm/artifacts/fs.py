"""One way to touch files whether the artifact root is a local folder or an object store."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec.implementations.local import LocalFileSystem

from domainllm.spec.base import is_uri


def url_to_fs(location: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(location)
    return fs, path


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def write_bytes_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a prefix. Object stores give
    that per object already; locally write a sibling temp file, fsync, and rename."""
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def sha256_file(fs: fsspec.AbstractFileSystem, path: str, chunk: int = 4 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def redact_url(value: str) -> str:
    """Drop credentials from a URI (`s3://key:secret@host/x` -> `s3://***@host/x`)."""
    if not is_uri(value):
        return value
    parts = urlsplit(value)
    if "@" not in parts.netloc:
        return value
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def file_fingerprint(info: dict[str, Any]) -> str:
    """Cheap change detector for an input file: size plus mtime (local) or ETag (stores)."""
    marker = info.get("mtime") or info.get("ETag") or info.get("etag") or info.get("LastModified") or ""
    return f"{info.get('size')}:{marker}"


def folder_fingerprint(location: str) -> str:
    """Cheap change detector for an input folder (a model): every file's path, size and
    mtime/ETag."""
    fs, root = url_to_fs(location)
    listing = fs.find(root, detail=True)
    return "|".join(f"{p[len(root):]}={file_fingerprint(i)}" for p, i in sorted(listing.items()))
