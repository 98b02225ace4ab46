"""The PII report: findings by type and what the configuration cannot detect (JSON + plot).
Counts only: no detected value ever reaches a report."""

from __future__ import annotations

import json

import fsspec

from domainllm.artifacts.fs import join
from domainllm.plots import subplots, to_png
from domainllm.spec.pii import PiiConfig


def pii_summary(counts: dict[str, int], cfg: PiiConfig, names: bool) -> dict:
    not_detected = [] if names or "PERSON" not in cfg.entities else ["PERSON"]
    return {
        "found": {k.split(".", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("pii.")},
        "docs_in": counts.get("docs_in", 0),
        "docs_with_pii": counts.get("docs_with_pii", 0),
        "entities": list(cfg.entities),
        "not_detected": not_detected,
        "note": ("person names were NOT looked for: set data.pii.names_en (and names_zh) to true to detect them"
                 if not_detected else
                 "person names detected with the configured NER model" if names else "PERSON not requested"),
    }  # fmt: skip


def write_pii_report(counts: dict[str, int], cfg: PiiConfig, fs: fsspec.AbstractFileSystem, out_dir: str,
                     names_detected: bool) -> list[str]:  # fmt: skip
    summary = pii_summary(counts, cfg, names_detected)
    with fs.open(join(out_dir, "report.json"), "wb") as fh:
        fh.write(json.dumps(summary, indent=2).encode() + b"\n")
    fig, axes = subplots(1, 2, figsize=(11, 4))
    found = summary["found"]
    if found:
        axes[0].barh(list(found), list(found.values()), color="tab:purple")
    else:
        axes[0].text(0.5, 0.5, "no PII found", ha="center", va="center")
    axes[0].set_title("PII replaced, by type")
    axes[1].bar(["with PII", "without"], [summary["docs_with_pii"], summary["docs_in"] - summary["docs_with_pii"]],
                color=["tab:purple", "tab:gray"])  # fmt: skip
    axes[1].set_title("documents" + (" (names not detected)" if summary["not_detected"] else ""))
    with fs.open(join(out_dir, "report.png"), "wb") as fh:
        fh.write(to_png(fig))
    return ["report.json", "report.png"]
