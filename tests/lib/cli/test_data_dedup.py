"""`domainllm data dedup INPUT OUTPUT --threshold 0.8`."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import domainllm_cmd


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma", "theta", "kappa", "zeta",
                                "lambda", "rho", "tau", "phi", "chi", "psi", "mu", "nu", "xi", "pi", "eta"])
                    + str(rng.randint(0, 50)) for _ in range(words))  # fmt: skip


def test_dedup_command_writes_kept_and_removed_with_duplicate_of(tmp_path: Path) -> None:
    rng = random.Random(0)
    a, b = _text(rng, 120), _text(rng, 120)
    rows = [
        {"id": "a", "text": a},
        {"id": "b", "text": b},
        {"id": "a-exact", "text": a + "\n"},
        {"id": "a-near", "text": "Reposted: " + a.upper().replace(" ", "  ")},
        {"id": "b-truncated", "text": b[: int(len(b) * 0.96)]},
        {"id": "punct-1", "text": "?!?! ... ---"},
        {"id": "punct-2", "text": "?!?! ... ---"},
    ]
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + json.dumps({"id": "empty", "text": ""}) + "\n")
    out = tmp_path / "out"
    proc = subprocess.run(domainllm_cmd("data", "dedup", str(src), str(out), "--threshold", "0.8"),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["docs_in"] == 7 and counts["docs_out"] == 3 and counts["removed"] == 4
    assert counts["input.quarantined"] == 1  # the empty record, with its reason

    kept = [r["id"] for f in sorted(out.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert kept == ["a", "b", "punct-1"]
    removed = {r["id"]: r for r in pq.read_table(out / "removed").to_pylist()}
    assert {k: (v["reason"], v["duplicate_of"]) for k, v in removed.items()} == {
        "a-exact": ("exact_duplicate", "a"),
        "a-near": ("near_duplicate", "a"),
        "b-truncated": ("near_duplicate", "b"),
        "punct-2": ("exact_duplicate", "punct-1"),
    }
    assert removed["a-near"]["text"].startswith("Reposted")  # nothing lost
    report = json.loads((out / "report.json").read_text())
    assert report["cluster_sizes"] == {"2": 2, "3": 1}
    assert (out / "report.png").stat().st_size > 0


def test_a_50mb_document_does_not_break_dedup(tmp_path: Path) -> None:
    rng = random.Random(1)
    big = _text(rng, 50 * 1024 * 1024 // 8)
    src = tmp_path / "docs.jsonl"
    with src.open("w") as fh:
        fh.write(json.dumps({"id": "big", "text": big}) + "\n")
        fh.write(json.dumps({"id": "small", "text": _text(rng, 80)}) + "\n")
    proc = subprocess.run(domainllm_cmd("data", "dedup", str(src), str(tmp_path / "out")), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["docs_in"] == 2 and counts["docs_out"] == 2


def test_bad_options_fail_before_any_work(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "x"}) + "\n")
    proc = subprocess.run(domainllm_cmd("data", "dedup", str(src), str(tmp_path / "out"), "--threshold", "1.5"),
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "threshold" in proc.stderr and "less than or equal to 1" in proc.stderr
    assert not (tmp_path / "out").exists()
