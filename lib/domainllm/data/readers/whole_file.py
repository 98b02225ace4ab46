"""Plain-text and source-code files: one document per file."""

from __future__ import annotations

from collections.abc import Iterator

from domainllm.data.readers.context import ReadContext
from domainllm.data.readers.files import SourceFile, code_language
from domainllm.data.records import Doc, InputError, Reason, Reject

_BINARY_SNIFF = 8192


def _decode(data: bytes) -> tuple[str | None, str]:
    """UTF-8 first (BOM allowed); otherwise the most likely legacy encoding."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        return None, ""
    return str(best), best.encoding


def read_whole_file(ctx: ReadContext, f: SourceFile, *, as_code: bool) -> Iterator[Doc | Reject]:
    limit = ctx.cfg.max_record_bytes
    if f.size == 0:
        ctx.counts["empty_files"] += 1
        return
    ctx.counts["records_in"] += 1
    if f.size > limit:
        yield ctx.reject(
            f.relpath, None, Reason.RECORD_TOO_LARGE,
            f"file is {f.size} bytes, over data.ingest.max_record_bytes={limit}", None,
        )  # fmt: skip
        return
    try:
        with f.fs.open(f.path, "rb", compression="infer") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(f"source {ctx.source.name!r}: cannot read input file {f.path}: {exc}") from None
    if not data:
        ctx.counts["records_in"] -= 1
        ctx.counts["empty_files"] += 1
        return
    if b"\x00" in data[:_BINARY_SNIFF]:
        yield ctx.reject(f.relpath, None, Reason.BINARY_FILE, "NUL bytes in the first 8 KiB: not a text file", None)
        return
    text, encoding = _decode(data)
    if text is None:
        yield ctx.reject(f.relpath, None, Reason.UNDECODABLE, "not UTF-8 and no other encoding fits", None)
        return
    extra = {"encoding": encoding} if encoding != "utf-8" else None
    lang = code_language(f.relpath, ctx.source) if as_code else None
    yield ctx.accept(text, f.relpath, None, kind="code" if lang else "text", lang=lang, extra=extra)
