"""`domainllm data quality INPUT OUTPUT`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import domainllm_cmd
from tests.lib.data.quality.test_rules import GOOD_PROSE


def test_quality_command_keeps_ids_and_writes_removed_with_reasons(tmp_path: Path) -> None:
    rows = [
        {"id": "good-1", "text": GOOD_PROSE},
        {"id": "short", "text": "Too short to keep."},
        {"id": "spammy", "text": "buy now " * 15 + GOOD_PROSE[:120]},
        {"id": "good-2", "text": GOOD_PROSE.replace("bless", "tie")},
    ]
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    out = tmp_path / "out"
    proc = subprocess.run(domainllm_cmd("data", "quality", str(src), str(out)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["docs_in"] == 4 and counts["docs_out"] == 2 and counts["removed"] == 2
    assert counts["removed.too_few_words"] == 1 and counts["removed.top_2gram"] == 1
    assert counts["input.quarantined"] == 1

    kept = [r for f in sorted(out.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert [r["id"] for r in kept] == ["good-1", "good-2"]
    removed = pq.read_table(out / "removed" / "part-00000.parquet").to_pylist()
    assert {(r["id"], r["reason"]) for r in removed} == {("short", "too_few_words"), ("spammy", "top_2gram")}
    assert all(r["text"] and r["detail"] for r in removed)  # nothing lost: the text is kept
    assert pq.read_table(out / "quarantine" / "part-00000.parquet").to_pylist()[0]["reason"] == "invalid_json"


def test_quality_config_file_and_its_errors(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Too short to keep."}) + "\n")
    (tmp_path / "q.yaml").write_text("prose:\n  min_words: null\n")
    proc = subprocess.run(domainllm_cmd("data", "quality", str(src), str(tmp_path / "o1"), "--config", str(tmp_path / "q.yaml")),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0 and json.loads(proc.stdout.splitlines()[-1])["docs_out"] == 1

    (tmp_path / "bad.yaml").write_text("prose:\n  min_wrods: 5\n")
    proc = subprocess.run(domainllm_cmd("data", "quality", str(src), str(tmp_path / "o2"), "--config", str(tmp_path / "bad.yaml")),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "prose.min_wrods" in proc.stderr
    assert not (tmp_path / "o2").exists()
