"""Field extraction shared by the record readers (JSONL lines and Parquet rows)."""

from __future__ import annotations

import json
from typing import Any

from domainllm.data.readers.context import ReadContext
from domainllm.data.records import Doc, Reason, Reject


def record_to_doc(ctx: ReadContext, record: Any, relpath: str, position: int, raw: bytes) -> Doc | Reject:
    src = ctx.source
    if not isinstance(record, dict):
        return ctx.reject(relpath, position, Reason.NOT_AN_OBJECT, f"expected an object, got {type(record).__name__}", raw)
    if src.text_field not in record or record[src.text_field] is None:
        return ctx.reject(relpath, position, Reason.MISSING_TEXT, f"no {src.text_field!r} field", raw)
    text = record[src.text_field]
    if not isinstance(text, str):
        return ctx.reject(
            relpath, position, Reason.TEXT_NOT_STRING, f"{src.text_field!r} is {type(text).__name__}, not a string", raw
        )
    record_id = record.get(src.id_field)
    if record_id is not None:
        if isinstance(record_id, bool) or not isinstance(record_id, str | int) or record_id == "":
            return ctx.reject(
                relpath, position, Reason.INVALID_ID, f"{src.id_field!r} must be a non-empty string or integer", raw
            )
        record_id = str(record_id)
    lang = record.get("lang") if isinstance(record.get("lang"), str) else None
    # Records that already carry our schema (a stage's output) keep their kind and domain.
    kind = record["kind"] if record.get("kind") in ("text", "code") else "text"
    domain = record["domain"] if record.get("domain") in ("domain", "general") else None
    fields = {k: v for k, v in record.items() if k not in (src.text_field, src.id_field, "lang", "kind", "domain")}
    extra = {"fields": fields} if fields else None
    return ctx.accept(text, relpath, position, kind=kind, lang=lang, record_id=record_id, extra=extra, raw=raw,
                      domain=domain)  # fmt: skip


def row_raw(row: dict[str, Any]) -> bytes:
    return json.dumps(row, ensure_ascii=False, default=str, sort_keys=True).encode("utf-8", "replace")
