"""The ingest report: counts as JSON and a picture (records per source, rejects, lengths)."""

from __future__ import annotations

import json

import fsspec

from domainllm.artifacts.fs import join
from domainllm.data.ingest import IngestReport
from domainllm.plots import subplots, to_png


def write_ingest_report(report: IngestReport, fs: fsspec.AbstractFileSystem, out_dir: str) -> list[str]:
    """Writes `report.json` and `report.png` into `out_dir`; returns their relative paths."""
    doc = {
        "counts": dict(sorted(report.counts.items())),
        "by_source": report.by_source,
        "length_histogram": {f"{2**b}-{2 ** (b + 1) - 1}": n for b, n in sorted(report.length_hist.items())},
    }
    with fs.open(join(out_dir, "report.json"), "wb") as fh:
        fh.write(json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
    with fs.open(join(out_dir, "report.png"), "wb") as fh:
        fh.write(_plot(report))
    return ["report.json", "report.png"]


def _plot(report: IngestReport) -> bytes:
    fig, axes = subplots(1, 3, figsize=(15, 4.2))
    names = list(report.by_source)
    accepted = [report.by_source[n].get("records_out", 0) for n in names]
    rejected = [report.by_source[n].get("quarantined", 0) for n in names]
    axes[0].bar(names, accepted, label="accepted")
    axes[0].bar(names, rejected, bottom=accepted, label="quarantined", color="tab:red")
    axes[0].set_title("records per source")
    axes[0].legend()
    axes[0].tick_params(axis="x", rotation=30)

    reasons = {k.split(".", 1)[1]: v for k, v in report.counts.items() if k.startswith("quarantined.")}
    if reasons:
        axes[1].barh(list(reasons), list(reasons.values()), color="tab:red")
    else:
        axes[1].text(0.5, 0.5, "nothing quarantined", ha="center", va="center")
    axes[1].set_title("quarantine reasons")

    if report.length_hist:
        buckets = sorted(report.length_hist)
        axes[2].bar([2**b for b in buckets], [report.length_hist[b] for b in buckets],
                    width=[2**b for b in buckets], align="edge", log=True)  # fmt: skip
        axes[2].set_xscale("log", base=2)
    axes[2].set_title("document length (characters)")
    return to_png(fig)


def write_step_report(title: str, counts: dict[str, int], fs: fsspec.AbstractFileSystem, out_dir: str) -> list[str]:
    """A filtering step's report: `report.json` with its counts and `report.png` with
    kept vs removed and the removal reasons."""
    with fs.open(join(out_dir, "report.json"), "wb") as fh:
        fh.write(json.dumps({"step": title, "counts": dict(sorted(counts.items()))}, indent=2).encode() + b"\n")
    fig, axes = subplots(1, 2, figsize=(11, 4))
    axes[0].bar(["kept", "removed"], [counts.get("docs_out", 0), counts.get("removed", 0)],
                color=["tab:blue", "tab:red"])  # fmt: skip
    axes[0].set_title(f"{title}: documents")
    reasons = sorted(((k.split(".", 1)[1], v) for k, v in counts.items() if k.startswith("removed.")),
                     key=lambda kv: kv[1])  # fmt: skip
    if reasons:
        axes[1].barh([r for r, _ in reasons], [v for _, v in reasons], color="tab:red")
    else:
        axes[1].text(0.5, 0.5, "nothing removed", ha="center", va="center")
    axes[1].set_title("removal reasons")
    with fs.open(join(out_dir, "report.png"), "wb") as fh:
        fh.write(to_png(fig))
    return ["report.json", "report.png"]


def write_languages_plot(counts: dict[str, int], fs: fsspec.AbstractFileSystem, out_dir: str) -> list[str]:
    """`languages.png`: documents in by language (natural languages as identified, code by
    its programming language), from the `lang.<code>` counts."""
    langs = sorted(((k.split(".", 1)[1], v) for k, v in counts.items() if k.startswith("lang.")), key=lambda kv: kv[1])
    if not langs:
        return []
    fig, ax = subplots(1, 1, figsize=(7, max(2.5, 0.3 * len(langs[-30:]) + 1)))
    ax.barh([k for k, _ in langs[-30:]], [v for _, v in langs[-30:]], color="tab:blue")
    ax.set_title("documents by language" + (f" (30 most common of {len(langs)})" if len(langs) > 30 else ""))
    with fs.open(join(out_dir, "languages.png"), "wb") as fh:
        fh.write(to_png(fig))
    return ["languages.png"]
