"""The mix report: proportions per source and group, curriculum stages, group sizes."""

from __future__ import annotations

import json

import fsspec

from domainllm.artifacts.fs import join
from domainllm.data.mix.mixer import MixResult
from domainllm.plots import subplots, to_png


def mix_summary(result: MixResult) -> dict:
    total = sum(result.chars_by_source.values()) or 1
    by_group: dict[str, int] = {}
    for s in result.sizes:
        by_group[s.domain] = by_group.get(s.domain, 0) + result.chars_by_source.get(s.name, 0)
    return {
        "counts": dict(result.counts),
        "fractions": {g: round(c / total, 4) for g, c in sorted(by_group.items())},
        "sources": {
            s.name: {"group": s.domain, "docs": s.docs, "chars_available": s.chars,
                     "repeat": round(result.plan.repeat[s.name], 4),
                     "chars_in_mix": result.chars_by_source.get(s.name, 0)}
            for s in result.sizes
        },  # fmt: skip
        "curriculum_stage_docs": result.stage_sizes,
        "group_sizes": {str(k): v for k, v in sorted(result.group_sizes.items())},
        "notes": result.notes,
    }


def write_mix_report(result: MixResult, fs: fsspec.AbstractFileSystem, out_dir: str) -> list[str]:
    summary = mix_summary(result)
    with fs.open(join(out_dir, "report.json"), "wb") as fh:
        fh.write(json.dumps(summary, indent=2).encode() + b"\n")
    fig, axes = subplots(1, 3, figsize=(16, 4.2))
    names = list(summary["sources"])
    avail = [summary["sources"][n]["chars_available"] / 1e6 for n in names]
    mixed = [summary["sources"][n]["chars_in_mix"] / 1e6 for n in names]
    x = range(len(names))
    axes[0].bar([i - 0.2 for i in x], avail, width=0.4, label="available")
    axes[0].bar([i + 0.2 for i in x], mixed, width=0.4, label="in the mix")
    axes[0].set_xticks(list(x), names, rotation=30)
    axes[0].set_ylabel("million characters")
    axes[0].legend()
    axes[0].set_title("sources")
    fr = summary["fractions"]
    axes[1].pie(list(fr.values()), labels=[f"{k} {v:.0%}" for k, v in fr.items()])
    axes[1].set_title("domain / general (characters)")
    gs = result.group_sizes
    if gs:
        keys = sorted(gs)
        axes[2].bar([str(k) for k in keys], [gs[k] for k in keys], log=True)
        axes[2].set_xlabel("documents per group")
    axes[2].set_title("in-context groups")
    with fs.open(join(out_dir, "report.png"), "wb") as fh:
        fh.write(to_png(fig))
    return ["report.json", "report.png"]
