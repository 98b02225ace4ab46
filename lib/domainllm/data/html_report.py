"""The data report: one HTML page over every data stage of a run, with its plots inline.

Per step: documents in, out and removed by reason; then the ingest length histogram,
duplicate cluster sizes, PII counts by type, the final mix proportions and token counts.
Self-contained (images as data URIs), so it opens from MLflow, an object store or a laptop.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass

import fsspec

from domainllm.artifacts import Manifest
from domainllm.artifacts.fs import join
from domainllm.plots import subplots, to_png

STEP_STAGES = ("quality", "dedup", "compliance", "decontaminate")
"""Stages that remove documents, in pipeline order (after ingest)."""


@dataclass(frozen=True)
class StageView:
    name: str
    manifest: Manifest
    folder: str


def _png(fs: fsspec.AbstractFileSystem, path: str) -> str | None:
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as fh:
        return base64.b64encode(fh.read()).decode()


def _json(fs: fsspec.AbstractFileSystem, path: str) -> dict:
    if not fs.exists(path):
        return {}
    with fs.open(path, "rb") as fh:
        return json.loads(fh.read())


def funnel(stages: dict[str, StageView]) -> list[dict]:
    """Rows of (step, in, out, removed, reasons) from the manifests' counts."""
    rows = []
    ingest = stages["ingest"].manifest.counts
    rows.append({"step": "ingest", "in": ingest.get("records_in", 0), "out": ingest.get("records_out", 0),
                 "removed": ingest.get("quarantined", 0),
                 "reasons": {k.split(".", 1)[1]: v for k, v in ingest.items() if k.startswith("quarantined.")}})  # fmt: skip
    for name in STEP_STAGES:
        if name not in stages:
            continue
        c = stages[name].manifest.counts
        rows.append({"step": name, "in": c.get("docs_in", 0), "out": c.get("docs_out", 0), "removed": c.get("removed", 0),
                     "reasons": {k.split(".", 1)[1]: v for k, v in c.items() if k.startswith("removed.")}})  # fmt: skip
    return rows


def _funnel_png(rows: list[dict]) -> str:
    fig, ax = subplots(figsize=(8, 3.5))
    ax.bar([r["step"] for r in rows], [r["out"] for r in rows], color="tab:blue", label="kept")
    ax.bar([r["step"] for r in rows], [r["removed"] for r in rows], bottom=[r["out"] for r in rows],
           color="tab:red", label="removed / quarantined")  # fmt: skip
    ax.set_ylabel("documents")
    ax.set_title("documents through the data steps")
    ax.legend()
    return base64.b64encode(to_png(fig)).decode()


def render(run_id: str, stages: dict[str, StageView], fs: fsspec.AbstractFileSystem) -> tuple[str, dict]:
    rows = funnel(stages)
    summary: dict = {"run_id": run_id, "funnel": rows}
    parts = [f"<h1>Data report &mdash; run {html.escape(run_id)}</h1>",
             f'<img alt="funnel" src="data:image/png;base64,{_funnel_png(rows)}">',
             "<table><tr><th>step</th><th>in</th><th>out</th><th>removed</th><th>by reason</th></tr>"]  # fmt: skip
    for r in rows:
        reasons = ", ".join(f"{html.escape(k)}: {v:,}" for k, v in sorted(r["reasons"].items(), key=lambda kv: -kv[1]))
        parts.append(f"<tr><td>{r['step']}</td><td>{r['in']:,}</td><td>{r['out']:,}</td><td>{r['removed']:,}</td>"
                     f"<td>{reasons or '&ndash;'}</td></tr>")  # fmt: skip
    parts.append("</table>")
    sections = [("ingest", "Ingest: records per source, quarantine reasons, document lengths"),
                ("quality", "Quality filters"), ("dedup_clusters", "Duplicates: kept vs removed, cluster sizes"),
                ("pii", "PII replaced, by type"), ("compliance", "Compliance filter"),
                ("decontaminate", "Decontamination"), ("mix", "Mix: sources, domain/general share, groups"),
                ("pack", "Packed tokens per source")]  # fmt: skip
    for name, title in sections:
        if name not in stages:
            continue
        view = stages[name]
        parts.append(f"<h2>{html.escape(title)}</h2>")
        extra = _json(fs, join(view.folder, "report.json"))
        if name == "pii":
            summary["pii"] = extra.get("found", {})
            if extra.get("not_detected"):
                parts.append(f"<p class=warn>{html.escape(extra.get('note', ''))}</p>")
        if name == "dedup_clusters":
            summary["duplicate_cluster_sizes"] = extra.get("cluster_sizes", {})
        if name == "mix":
            summary["mix"] = {"fractions": extra.get("fractions", {}), "sources": extra.get("sources", {})}
            for note in extra.get("notes", []):
                parts.append(f"<p class=warn>{html.escape(note)}</p>")
        if name == "pack":
            c = view.manifest.counts
            summary["tokens"] = {k.split(".", 1)[1]: v for k, v in c.items() if k.startswith("tokens.")}
            parts.append(f"<p>{c.get('tokens', 0):,} tokens in {c.get('sequences', 0):,} sequences of "
                         f"{view.manifest.info.get('seq_len')} tokens; {c.get('tail_tokens_dropped', 0):,} tail tokens "
                         "dropped.</p>")  # fmt: skip
        img = _png(fs, join(view.folder, "report.png"))
        if img:
            parts.append(f'<img alt="{name}" src="data:image/png;base64,{img}">')
        counts = json.dumps(view.manifest.counts, indent=1, sort_keys=True)
        parts.append(f"<details><summary>counts</summary><pre>{html.escape(counts)}</pre></details>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%}.warn{color:#a40}")  # fmt: skip
    page = f"<!doctype html><html><head><meta charset=utf-8><title>Data report {html.escape(run_id)}</title>" \
           f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"  # fmt: skip
    return page, summary
