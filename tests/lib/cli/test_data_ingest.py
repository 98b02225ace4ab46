"""`domainllm data ingest INPUT OUTPUT` as a user runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import domainllm_cmd


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(domainllm_cmd("data", "ingest", *args), capture_output=True, text=True)


def test_ingest_folder_writes_parquet_and_quarantine(tmp_path: Path) -> None:
    src = tmp_path / "input"
    src.mkdir()
    (src / "a.jsonl").write_text('{"id": "keep-me", "text": "hello"}\n{"id": 3, "text": "three"}\nnot json\n')
    (src / "notes.txt").write_text("plain text document\n")
    (src / "tool.py").write_text("print('hi')\n")
    out = tmp_path / "out"
    proc = _run(str(src), str(out))
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["records_out"] == 4 and counts["quarantined"] == 1 and counts["quarantined.invalid_json"] == 1

    rows = [r for f in sorted(out.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert [r["id"] for r in rows][:2] == ["keep-me", "3"]
    assert {(json.loads(r["metadata"])["path"], r["kind"], r["lang"]) for r in rows[2:]} == {
        ("notes.txt", "text", "und"), ("tool.py", "code", "python")
    }  # fmt: skip
    assert rows[0]["source"] == "input"
    rejects = pq.read_table(out / "quarantine" / "part-00000.parquet").to_pylist()
    assert [(r["path"], r["line"], r["reason"], r["raw"]) for r in rejects] == [("a.jsonl", 3, "invalid_json", b"not json")]
    assert (out / "_manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input", "out"]  # no staging leftovers


def test_existing_output_needs_force(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"text": "x"}\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.parquet").write_bytes(b"old")
    proc = _run(str(tmp_path / "in.jsonl"), str(out))
    assert proc.returncode == 2 and "exists and is not empty; pass --force" in proc.stderr
    proc = _run(str(tmp_path / "in.jsonl"), str(out), "--force")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "part-00000.parquet"]


def test_missing_input_names_the_path(tmp_path: Path) -> None:
    proc = _run(str(tmp_path / "does-not-exist"), str(tmp_path / "out"))
    assert proc.returncode == 2
    assert f"input path does not exist: {tmp_path / 'does-not-exist'}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
