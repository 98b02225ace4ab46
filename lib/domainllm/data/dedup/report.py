"""The dedup clustering report: counts, LSH parameters and cluster sizes (JSON + plot)."""

from __future__ import annotations

import json

import fsspec

from domainllm.artifacts.fs import join
from domainllm.data.dedup.clusters import DedupResult
from domainllm.plots import subplots, to_png


def write_dedup_report(result: DedupResult, fs: fsspec.AbstractFileSystem, out_dir: str) -> list[str]:
    doc = {
        "counts": dict(sorted(result.counts.items())),
        "lsh": {"bands": result.bands, "rows": result.rows},
        "cluster_sizes": {str(k): v for k, v in sorted(result.cluster_sizes.items())},
    }
    with fs.open(join(out_dir, "report.json"), "wb") as fh:
        fh.write(json.dumps(doc, indent=2).encode() + b"\n")
    fig, axes = subplots(1, 2, figsize=(11, 4))
    c = result.counts
    labels = ["kept", "exact duplicates", "near duplicates"]
    values = [c.get("docs", 0) - c.get("exact_duplicates", 0) - c.get("near_duplicates", 0),
              c.get("exact_duplicates", 0), c.get("near_duplicates", 0)]  # fmt: skip
    axes[0].bar(labels, values, color=["tab:blue", "tab:orange", "tab:red"])
    axes[0].set_title("documents")
    if result.cluster_sizes:
        sizes = sorted(result.cluster_sizes)
        axes[1].bar([str(s) for s in sizes], [result.cluster_sizes[s] for s in sizes], log=True)
        axes[1].set_xlabel("documents in cluster")
    else:
        axes[1].text(0.5, 0.5, "no duplicate clusters", ha="center", va="center")
    axes[1].set_title("duplicate cluster sizes")
    with fs.open(join(out_dir, "report.png"), "wb") as fh:
        fh.write(to_png(fig))
    return ["report.json", "report.png"]
