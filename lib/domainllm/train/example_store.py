"""SFT examples and DPO triples on disk: validated from the user's files (bad records
quarantined with the reason, never dropped silently), written as Parquet of chat messages,
and read back as datasets for TRL."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa

from domainllm.artifacts.fs import join
from domainllm.data.shards import write_parquet
from domainllm.train.examples import ExampleError, read_records

log = logging.getLogger(__name__)

EXAMPLES_DIR = "examples"
QUARANTINE_DIR = "quarantine"
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SFT_SCHEMA = pa.schema([("id", pa.string()), ("kind", pa.string()), ("messages", MESSAGES)])
DPO_SCHEMA = pa.schema([("id", pa.string()), ("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)])
QUARANTINE_SCHEMA = pa.schema([("file", pa.string()), ("position", pa.int64()), ("reason", pa.string()),
                               ("detail", pa.string()), ("raw", pa.string())])  # fmt: skip
_SHOWN = 5


@dataclass
class Validated:
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


def validate_records(fs: fsspec.AbstractFileSystem, path: str, to_row: Callable[[Any], dict[str, Any]]) -> Validated:
    """Every record of `path` through `to_row`; an `ExampleError` quarantines the record
    with its reason and the field at fault (logged for the first few, never the text)."""
    out = Validated()
    for name, pos, record, parse_error in read_records(fs, path):
        out.counts["records_in"] += 1
        try:
            if parse_error is not None:
                raise ExampleError("invalid_json", parse_error)
            row = to_row(record)
        except ExampleError as exc:
            out.counts["quarantined"] += 1
            out.counts[f"quarantined.{exc.reason}"] += 1
            if out.counts["quarantined"] <= _SHOWN:
                log.warning("quarantined %s record %d: %s", name, pos, exc)
            raw = json.dumps(record, ensure_ascii=False, default=str) if record is not None else None
            out.quarantine.append({"file": name, "position": pos, "reason": exc.reason, "detail": str(exc), "raw": raw})
            continue
        row.setdefault("id", str(record.get("id") or f"{name}:{pos}"))
        out.rows.append(row)
    if out.counts["quarantined"] > _SHOWN:
        log.warning("... %d records quarantined in all (see the quarantine folder)", out.counts["quarantined"])
    if not out.rows:
        reasons = ", ".join(f"{k.split('.', 1)[1]}: {v}" for k, v in out.counts.items() if k.startswith("quarantined."))
        raise ExampleError("no_valid_records", f"{path}: none of its {out.counts['records_in']} records is a valid example ({reasons or 'no records'})")
    return out


def write_examples(fs: fsspec.AbstractFileSystem, folder: str, rows: Iterable[dict], schema: pa.Schema) -> int:
    rows = list(rows)
    write_parquet(fs, join(folder, EXAMPLES_DIR, "part-00000.parquet"), pa.Table.from_pylist(rows, schema=schema))
    return len(rows)


def write_quarantine(fs: fsspec.AbstractFileSystem, folder: str, rows: list[dict]) -> None:
    if rows:
        write_parquet(fs, join(folder, QUARANTINE_DIR, "part-00000.parquet"), pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA))


def read_examples(fs: fsspec.AbstractFileSystem, folder: str, columns: list[str], cache_dir: str | None = None):
    """The examples as a `datasets.Dataset` with the given columns. With `cache_dir` (on a
    filesystem all ranks share) the dataset is file-backed there, so the tokenized copies
    TRL makes on rank 0 (`main_process_first`) are found by the other ranks."""
    import pyarrow.parquet as pq
    from datasets import Dataset
    from datasets.table import InMemoryTable

    path = join(folder, EXAMPLES_DIR, "part-00000.parquet")
    if cache_dir is not None:
        return Dataset.from_parquet(path, columns=columns, cache_dir=cache_dir)
    with fs.open(path, "rb") as fh:
        return Dataset(InMemoryTable(pq.read_table(fh, columns=columns)))


def split_every(ds, fraction: float):
    """(train, eval): every k-th example held out (k = 1 / fraction), a stable split."""
    k = max(2, round(1 / fraction))
    if len(ds) < k:
        return ds, None
    return ds.select([i for i in range(len(ds)) if i % k != k - 1]), ds.select([i for i in range(len(ds)) if i % k == k - 1])
