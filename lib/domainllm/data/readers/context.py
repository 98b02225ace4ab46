"""Turning a raw candidate into an accepted `Doc` or a `Reject`, the same way for every reader."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from domainllm.data.normalize import Normalizer
from domainllm.data.records import Doc, Reason, Reject
from domainllm.spec.data import IngestConfig
from domainllm.spec.sources import Source


@dataclass
class ReadContext:
    source: Source
    cfg: IngestConfig
    normalizer: Normalizer
    counts: Counter[str] = field(default_factory=Counter)

    def reject(self, relpath: str, line: int | None, reason: Reason, detail: str, raw: bytes | None) -> Reject:
        return Reject(self.source.name, relpath, line, reason, detail, raw)

    def doc_id(self, relpath: str, position: int | None) -> str:
        key = f"{relpath}:{position if position is not None else ''}".encode()
        return f"{self.source.name}-{hashlib.sha1(key).hexdigest()[:16]}"

    def accept(
        self,
        text: str,
        relpath: str,
        position: int | None,
        *,
        kind: str,
        lang: str | None,
        record_id: str | None = None,
        extra: dict[str, Any] | None = None,
        raw: bytes | None = None,
        domain: str | None = None,
    ) -> Doc | Reject:
        norm = self.normalizer(text)
        if not norm.text.strip():
            return self.reject(relpath, position, Reason.EMPTY_TEXT, "text is empty after normalization", raw)
        metadata: dict[str, Any] = {"path": relpath}
        if position is not None:
            metadata["line"] = position
        if norm.changes:
            metadata["normalized"] = list(norm.changes)
        if extra:
            metadata.update(extra)
        return Doc(
            id=record_id if record_id is not None else self.doc_id(relpath, position),
            text=norm.text,
            source=self.source.name,
            domain=domain or self.source.domain,
            lang=lang or self.source.lang or "und",
            kind=kind,
            metadata=metadata,
        )
