from __future__ import annotations

import json
from pathlib import Path

from domainllm.demo.corpora import build_corpora


def test_corpora_are_real_files_and_rebuilding_is_a_noop(tmp_path: Path) -> None:
    out = tmp_path / "c"
    summary = build_corpora(out, max_domain_mb=0.2, max_general_mb=0.2)
    assert summary["perl"]["files"] > 3 and summary["python"]["files"] > 3
    assert any(p.suffix == ".pm" for p in (out / "perl").rglob("*"))
    lines = (out / "perl-synopses.jsonl").read_bytes().splitlines()
    good = [json.loads(line) for line in lines[: summary["perl-synopses"]["records"]]]
    assert all(r["id"].startswith("synopsis:") and "SYNOPSIS" in r["text"] for r in good)

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert build_corpora(out, max_domain_mb=0.2, max_general_mb=0.2) == summary
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    bigger = build_corpora(out, max_domain_mb=0.4, max_general_mb=0.2)
    assert bigger["perl"]["bytes"] > summary["perl"]["bytes"]
