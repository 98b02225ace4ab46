"""The dedup stages under the sharded-stage contract: shard tasks, collect, no-ops, and
the same output whatever the shard count."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.runner import StageError, run_stage
from tests.conftest import tiny_spec_doc, write_spec

POST = ("Perl's map and grep take a block and a list, evaluate the block for every element with $_ "
        "aliased to it, and return the results: map returns whatever the block returns while grep keeps the "
        "elements for which the block is true. Both are list operators, so parentheses are rarely needed.")  # fmt: skip


def small_shards_spec(corpora: Path, path: Path, **data) -> Path:
    """Many small shards, and a forum source with reposts (an exact and a near copy)."""
    forum = path.parent / "forum.jsonl"
    posts = [POST, f"Re: {POST.upper()}", "  " + POST + "\n", "Unrelated: how do I install a CPAN module offline? "
             "Download the tarball, unpack it, then run perl Makefile.PL, make, make test and make install."]  # fmt: skip
    forum.write_text("".join(json.dumps({"id": f"post-{i}", "text": t}) + "\n" for i, t in enumerate(posts)))
    doc = tiny_spec_doc(corpora)
    doc["sources"].append({"name": "forum", "path": str(forum), "domain": "domain", "lang": "en"})
    doc["data"] = {"ingest": {"shard_max_records": 40}, "quality": {"skip_sources": ["forum"]}, **data}
    return write_spec(path, doc)


def test_shard_tasks_then_collect(home: Path, corpora: Path, tmp_path: Path) -> None:
    spec = load_spec(small_shards_spec(corpora, tmp_path / "spec.yaml"))
    run_stage(spec, "ingest", "d")
    quality = run_stage(spec, "quality", "d").manifest
    layout = RunLayout(spec.artifact_root, "d")
    assert spec.data.shards == 2 and quality.counts["shards"] >= 2

    shard_outcomes = [run_stage(spec, "dedup_signatures", "d", shard=i) for i in range(2)]
    assert [o.manifest.info["shard"] for o in shard_outcomes] == [0, 1]
    assert Path(layout.shard_dir("dedup_signatures", 1, 2), "_manifest.json").is_file()
    assert layout.read_manifest("dedup_signatures") is None  # not published until collected
    assert run_stage(spec, "dedup_signatures", "d", shard=1).skipped

    sigs = run_stage(spec, "dedup_signatures", "d").manifest  # collect: reuses both shards
    assert sigs.counts["docs"] == quality.counts["docs_out"]
    assert sigs.counts["shards"] == quality.counts["shards"]
    assert not Path(layout.shards_root("dedup_signatures")).exists()
    assert run_stage(spec, "dedup_signatures", "d", shard=0).skipped  # stage already published

    buckets = run_stage(spec, "dedup_buckets", "d").manifest  # sharded by band
    assert sum(o.path.startswith("edges-band-") for o in buckets.outputs) == buckets.counts["bands_done"] > 1
    clusters = run_stage(spec, "dedup_clusters", "d").manifest
    dedup = run_stage(spec, "dedup", "d").manifest  # runs both shards in-process, then collects
    assert dedup.counts["docs_in"] == dedup.counts["docs_out"] + dedup.counts["removed"]
    assert dedup.counts["removed"] == clusters.counts.get("exact_duplicates", 0) + clusters.counts.get("near_duplicates", 0)
    out = Path(layout.stage_dir("dedup"))
    kept_ids = {r for f in out.glob("part-*.parquet") for r in pq.read_table(f, columns=["id"]).column(0).to_pylist()}
    removed = [r for f in (out / "removed").glob("part-*.parquet") for r in pq.read_table(f).to_pylist()]
    assert len(removed) == dedup.counts["removed"]
    assert all(r["duplicate_of"] in kept_ids for r in removed)
    forum = {r["id"]: (r["reason"], r["duplicate_of"]) for r in removed if r["source"] == "forum"}
    assert forum == {"post-1": ("near_duplicate", "post-0"), "post-2": ("exact_duplicate", "post-0")}
    assert {"report.json", "report.png"} <= {o.path for o in clusters.outputs}
    assert run_stage(spec, "dedup", "d").skipped


def test_output_does_not_depend_on_the_shard_count(home: Path, corpora: Path, tmp_path: Path) -> None:
    digests = {}
    for shards in (1, 3):
        spec = load_spec(small_shards_spec(corpora, tmp_path / f"spec{shards}.yaml", shards=shards))
        run_id = f"s{shards}"
        for stage in ("ingest", "quality", "dedup_signatures", "dedup_buckets", "dedup_clusters", "dedup"):
            run_stage(spec, stage, run_id)
        m = RunLayout(spec.artifact_root, run_id).read_manifest("dedup")
        digests[shards] = {o.path: o.sha256 for o in m.outputs if o.path.endswith(".parquet")}
    assert digests[1] == digests[3]


def test_shard_arguments_are_checked(tiny_spec: Path, home: Path) -> None:
    spec = load_spec(tiny_spec)
    run_stage(spec, "ingest", "x")
    run_stage(spec, "quality", "x")
    with pytest.raises(StageError, match="out of range: stage dedup_signatures has 2 shards"):
        run_stage(spec, "dedup_signatures", "x", shard=2)
    with pytest.raises(StageError, match="is not sharded"):
        run_stage(spec, "dedup_clusters", "x", shard=0)
