"""Rows handed from one flywheel stage to the next: JSON Lines in the stage output (nested
chat messages and candidate lists stay as they are)."""

from __future__ import annotations

import json
from typing import Any

from domainllm.stages.base import StageContext

ROWS = "rows.jsonl"
QUARANTINE = "quarantine.jsonl"


def write_rows(ctx: StageContext, rows: list[dict[str, Any]], name: str = ROWS) -> None:
    with ctx.out.fs.open(ctx.out.file(name), "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_rows(ctx: StageContext, stage: str, name: str = ROWS) -> list[dict[str, Any]]:
    with ctx.layout.fs.open(f"{ctx.upstream_dir(stage)}/{name}", "r") as fh:
        return [json.loads(line) for line in fh if line.strip()]
