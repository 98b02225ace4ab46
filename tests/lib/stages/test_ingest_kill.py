"""A stage killed with SIGKILL at any point leaves nothing that looks finished, and its
rerun produces byte-identical outputs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from tests.conftest import domainllm_cmd, write_spec

pytestmark = pytest.mark.slow


@pytest.fixture
def big_spec(home: Path, tmp_path: Path) -> Path:
    rng = random.Random(0)
    words = ["perl", "hash", "scalar", "regex", "module", "sub", "package", "bless", "ref", "array"]
    with open(tmp_path / "big.jsonl", "w") as fh:
        for i in range(120_000):
            text = " ".join(rng.choice(words) for _ in range(50))
            fh.write(json.dumps({"id": f"doc-{i}", "text": text}) + "\n")
            if i % 10_000 == 0:
                fh.write('{"id": "bad", "text": \n')  # a few rejects so quarantine is written too
    doc = {
        "name": "killtest",
        "artifact_root": str(home / "artifacts"),
        "sources": [{"name": "big", "path": str(tmp_path / "big.jsonl"), "domain": "domain"}],
        "data": {"ingest": {"shard_max_records": 4000}},
        "base_model": {"path": str(tmp_path / "unused-model")},
    }
    return write_spec(tmp_path / "spec.yaml", doc)


def _staged_parts(home: Path, run_id: str) -> int:
    staging = home / "artifacts" / run_id / ".staging"
    return len(list(staging.glob("ingest.*/part-*.parquet"))) if staging.exists() else 0


def _looks_finished(home: Path, run_id: str) -> bool:
    return (home / "artifacts" / run_id / "ingest" / "_manifest.json").exists()


@pytest.mark.parametrize("kill_after_parts", [0, 1, 8])
def test_sigkill_then_rerun_gives_identical_outputs(big_spec: Path, home: Path, kill_after_parts: int) -> None:
    run = "killed"
    proc = subprocess.Popen(
        domainllm_cmd("stage", "run", "ingest", "--spec", str(big_spec), "--run-id", run),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while _staged_parts(home, run) < kill_after_parts and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if kill_after_parts == 0:
        time.sleep(1.0)  # while it is still setting up (MLflow, listing files)
    assert proc.poll() is None, "the stage finished before it could be killed; make the input bigger"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    assert not _looks_finished(home, run)
    spec = load_spec(big_spec)
    assert RunLayout(spec.artifact_root, run).read_manifest("ingest") is None

    rerun = subprocess.run(
        domainllm_cmd("stage", "run", "ingest", "--spec", str(big_spec), "--run-id", run), capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    reference = subprocess.run(
        domainllm_cmd("stage", "run", "ingest", "--spec", str(big_spec), "--run-id", "reference"),
        capture_output=True, text=True,
    )  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-2000:]

    got = RunLayout(spec.artifact_root, run).read_manifest("ingest")
    want = RunLayout(spec.artifact_root, "reference").read_manifest("ingest")
    assert got is not None and want is not None
    assert [o.model_dump() for o in got.outputs] == [o.model_dump() for o in want.outputs]
    assert got.counts == want.counts and got.counts["records_out"] == 120_000 and got.counts["quarantined"] == 12
    # No partial files anywhere: no staging leftovers, nothing in the stage folder the manifest does not list.
    stage_dir = home / "artifacts" / run / "ingest"
    on_disk = {str(p.relative_to(stage_dir)) for p in stage_dir.rglob("*") if p.is_file()}
    assert on_disk == {o.path for o in got.outputs} | {"_manifest.json"}
    assert not list((home / "artifacts" / run / ".staging").glob("*"))
