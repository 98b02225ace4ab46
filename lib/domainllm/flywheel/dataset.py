"""The versioned preference dataset (`flywheel.dataset`, default `<artifact_root>/preferences`).

    parts/v000003.parquet     the pairs a version added
    versions/v000003.json     the version: its parts, counts and lineage (written last: a
                              version whose record is missing does not exist)
    trained.json              the version the last training round was triggered with

A version holds every pair of its parts and of all earlier versions. A flywheel run that is
retried after it appended finds its own version again instead of appending twice."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pyarrow as pa

from domainllm.artifacts.fs import join, url_to_fs, write_bytes_atomic
from domainllm.data.shards import write_parquet
from domainllm.train.example_store import MESSAGES

PAIR_SCHEMA = pa.schema([
    ("id", pa.string()), ("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES), ("margin", pa.float64()),
    ("label_source", pa.string()), ("chosen_model", pa.string()), ("rejected_model", pa.string()),
    ("request_id", pa.string()), ("prompt_hash", pa.string()), ("principal", pa.string()), ("version", pa.string()),
])  # fmt: skip


def dataset_root(spec) -> str:
    return spec.flywheel.dataset or join(spec.artifact_root, "preferences")


class PreferenceDataset:
    def __init__(self, root: str) -> None:
        self.root = root
        self.fs, self.path = url_to_fs(root)

    def _json(self, path: str) -> Any:
        with self.fs.open(path, "rb") as fh:
            return json.loads(fh.read())

    def versions(self) -> list[dict[str, Any]]:
        folder = join(self.path, "versions")
        if not self.fs.isdir(folder):
            return []
        return [self._json(p) for p in sorted(self.fs.ls(folder, detail=False)) if p.endswith(".json")]

    def latest(self) -> dict[str, Any] | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def read(self, version: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """Every pair up to `version` (default: the latest)."""
        import pyarrow.parquet as pq

        tables = []
        for v in self.versions():
            with self.fs.open(join(self.path, v["part"]), "rb") as fh:
                table = pq.read_table(fh)
            for name in PAIR_SCHEMA.names:  # parts written before a column existed (`principal`) get it empty
                if name not in table.column_names:
                    table = table.append_column(PAIR_SCHEMA.field(name), pa.nulls(len(table), PAIR_SCHEMA.field(name).type))
            table = table.select(PAIR_SCHEMA.names).cast(PAIR_SCHEMA)
            tables.append(table.select(columns) if columns else table)
            if v["version"] == version:
                break
        else:
            if version is not None:
                raise KeyError(f"no version {version} in the preference dataset {self.root}")
        return pa.concat_tables(tables) if tables else PAIR_SCHEMA.empty_table().select(columns or PAIR_SCHEMA.names)

    def prompt_texts(self) -> list[str]:
        """The user turns of every prompt in the dataset (for deduplicating new ones)."""
        from domainllm.flywheel.curate import prompt_text

        return [prompt_text(p) for p in self.read(columns=["prompt"]).column("prompt").to_pylist()]

    def append(self, pairs: list[dict[str, Any]], *, run_id: str, lineage: dict[str, Any]) -> dict[str, Any]:
        """Adds `pairs` as a new version (even when empty: the night is on record) and returns
        its record; a run that already appended these pairs gets its version back."""
        digest = hashlib.sha256("\n".join(sorted(p["id"] for p in pairs)).encode()).hexdigest()
        versions = self.versions()
        for v in versions:
            if v["run_id"] == run_id and v["pairs_digest"] == digest:
                return v
        number = int(versions[-1]["version"].lstrip("v")) + 1 if versions else 1
        version = f"v{number:06d}"
        part = f"parts/{version}.parquet"
        table = pa.Table.from_pylist([{**p, "version": version} for p in pairs], schema=PAIR_SCHEMA)
        write_parquet(self.fs, join(self.path, part), table)
        total = (versions[-1]["pairs_total"] if versions else 0) + len(pairs)
        record = {"version": version, "parent": versions[-1]["version"] if versions else None, "part": part,
                  "pairs_new": len(pairs), "pairs_total": total, "pairs_digest": digest, "run_id": run_id,
                  "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "lineage": lineage}  # fmt: skip
        write_bytes_atomic(self.fs, join(self.path, "versions", f"{version}.json"), json.dumps(record, indent=2).encode())
        return record

    def trained(self) -> dict[str, Any] | None:
        path = join(self.path, "trained.json")
        return self._json(path) if self.fs.exists(path) else None

    def pending(self) -> int:
        """Pairs added since the version the last training round was triggered with."""
        latest = self.latest()
        if latest is None:
            return 0
        trained = self.trained()
        done = 0
        if trained is not None:
            done = next((v["pairs_total"] for v in self.versions() if v["version"] == trained["version"]), 0)
        return latest["pairs_total"] - done

    def mark_trained(self, version: str, run_id: str) -> None:
        record = {"version": version, "triggered_by": run_id, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        write_bytes_atomic(self.fs, join(self.path, "trained.json"), json.dumps(record).encode())
