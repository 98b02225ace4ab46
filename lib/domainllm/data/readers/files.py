"""Listing a source's files and deciding how to read each one."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import fsspec

from domainllm.artifacts.fs import file_fingerprint, redact_url, url_to_fs
from domainllm.data.records import InputError
from domainllm.spec.sources import Source

CODE_EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pm": "perl", ".pl": "perl", ".t": "perl", ".xs": "c",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".java": "java", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".go": "go", ".rs": "rust", ".rb": "ruby",
    ".sh": "shell", ".bash": "shell", ".php": "php", ".scala": "scala", ".kt": "kotlin",
    ".swift": "swift", ".cs": "csharp", ".sql": "sql", ".lua": "lua", ".hs": "haskell",
    ".r": "r", ".jl": "julia", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml",
}  # fmt: skip
CODE_FILENAMES: dict[str, str] = {"Makefile": "make", "Dockerfile": "dockerfile", "CMakeLists.txt": "cmake"}
JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


@dataclass(frozen=True, slots=True)
class SourceFile:
    fs: fsspec.AbstractFileSystem
    path: str
    relpath: str
    size: int
    fingerprint: str


def _strip_compression(name: str) -> str:
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def code_language(relpath: str, source: Source) -> str | None:
    name = _strip_compression(relpath.rsplit("/", 1)[-1])
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in source.extensions:
        return source.extensions[ext]
    return CODE_EXTENSIONS.get(ext) or CODE_FILENAMES.get(name)


def file_format(relpath: str, source: Source) -> str:
    if source.format != "auto":
        return source.format
    name = _strip_compression(relpath.lower())
    if name.endswith(JSONL_EXTENSIONS):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "code" if code_language(relpath, source) else "text"


def _matches(relpath: str, patterns: tuple[str, ...]) -> bool:
    # fnmatch's `*` crosses '/', so `**/x` needs the root-level case added by hand.
    return any(
        fnmatch.fnmatchcase(relpath, p) or (p.startswith("**/") and fnmatch.fnmatchcase(relpath, p[3:]))
        for p in patterns
    )


def list_files(source: Source) -> list[SourceFile]:
    """The source's files in a stable order. A missing path is an error naming it."""
    fs, root = url_to_fs(source.path)
    shown = redact_url(source.path)  # never echo credentials embedded in a URI
    try:
        info = fs.info(root)
    except FileNotFoundError:
        raise InputError(
            f"source {source.name!r}: input path does not exist: {shown} "
            "(check sources[].path in the spec, or create it)"
        ) from None
    except OSError as exc:
        raise InputError(f"source {source.name!r}: cannot read input path {shown}: {exc}") from None
    if info["type"] != "directory":
        name = root.rsplit("/", 1)[-1]
        return [SourceFile(fs, root, name, int(info.get("size") or 0), file_fingerprint(info))]
    found = fs.find(root, detail=True, withdirs=False)
    files = []
    prefix = root.rstrip("/") + "/"
    for path in sorted(found):
        rel = path[len(prefix) :] if path.startswith(prefix) else path
        if source.include and not _matches(rel, source.include):
            continue
        if _matches(rel, source.exclude):
            continue
        detail = found[path]
        files.append(SourceFile(fs, path, rel, int(detail.get("size") or 0), file_fingerprint(detail)))
    return files
