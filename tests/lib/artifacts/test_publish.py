from __future__ import annotations

import json
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from domainllm.artifacts import (
    Manifest,
    RunLayout,
    new_staging,
    outputs_intact,
    publish,
    read_manifest,
    slug_run_id,
)


def _manifest(staging, stage: str = "s", fp: str = "f1") -> Manifest:
    return Manifest(
        stage=stage, run_id="r", fingerprint=fp, inputs={}, outputs=staging.describe_outputs(),
        code_version="t", spec_digest="d", started_at="x", finished_at="y", duration_s=0.0,
    )  # fmt: skip


def test_publish_moves_outputs_and_writes_the_manifest_last(tmp_path: Path) -> None:
    layout = RunLayout(str(tmp_path), "r")
    staging = new_staging(layout.fs, layout.staging_root(), "s")
    with layout.fs.open(staging.file("data/a.txt"), "wb") as fh:
        fh.write(b"hello")
    assert layout.read_manifest("s") is None
    manifest = _manifest(staging)
    assert [(o.path, o.bytes) for o in manifest.outputs] == [("data/a.txt", 5)]
    publish(staging, layout.stage_dir("s"), manifest, layout.trash_root())
    final = tmp_path / "r" / "s"
    assert (final / "data" / "a.txt").read_bytes() == b"hello"
    assert json.loads((final / "_manifest.json").read_text())["fingerprint"] == "f1"
    assert read_manifest(layout.fs, str(final)) == manifest
    assert outputs_intact(layout.fs, str(final), manifest)
    assert not list((tmp_path / "r" / ".staging").iterdir())


def test_republish_replaces_previous_output_entirely(tmp_path: Path) -> None:
    layout = RunLayout(str(tmp_path), "r")
    for content, name in ((b"old", "old.txt"), (b"new", "new.txt")):
        staging = new_staging(layout.fs, layout.staging_root(), "s")
        with layout.fs.open(staging.file(name), "wb") as fh:
            fh.write(content)
        publish(staging, layout.stage_dir("s"), _manifest(staging, fp=name), layout.trash_root())
    final = tmp_path / "r" / "s"
    assert sorted(p.name for p in final.iterdir()) == ["_manifest.json", "new.txt"]
    assert not list((tmp_path / "r" / ".trash").iterdir())


def test_leftover_staging_from_a_killed_attempt_is_cleared(tmp_path: Path) -> None:
    fs = LocalFileSystem()
    root = str(tmp_path / ".staging")
    first = new_staging(fs, root, "ingest")
    other = new_staging(fs, root, "ingest_extra")
    second = new_staging(fs, root, "ingest")
    assert not Path(first.path).exists() and Path(second.path).exists() and Path(other.path).exists()


def test_outputs_intact_detects_missing_or_truncated_files(tmp_path: Path) -> None:
    layout = RunLayout(str(tmp_path), "r")
    staging = new_staging(layout.fs, layout.staging_root(), "s")
    with layout.fs.open(staging.file("a.bin"), "wb") as fh:
        fh.write(b"12345")
    publish(staging, layout.stage_dir("s"), _manifest(staging), layout.trash_root())
    manifest = layout.read_manifest("s")
    (tmp_path / "r" / "s" / "a.bin").write_bytes(b"12")
    assert not outputs_intact(layout.fs, layout.stage_dir("s"), manifest)


def test_run_ids_are_validated_and_airflow_ids_slugged() -> None:
    assert slug_run_id("manual__2026-11-25T10:00:00.123+00:00") == "manual__2026-11-25T10-00-00.123-00-00"
    with pytest.raises(ValueError, match="not usable in paths"):
        RunLayout("/tmp", "../escape")
