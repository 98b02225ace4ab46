"""The forgetting trade-off in numbers: domain and general held-out perplexity of the base
model, of CPT on domain data only, and of CPT on the 70/30 domain/general mix.

    make demo                                   # the base model and the corpora
    .venv/bin/python bench/forgetting.py        # ~5 min on 2 cores

Each variant is a pipeline run of the demo spec through `cpt` (same base model, the same
training settings, only `data.mix.domain_fraction` differs). The held-out documents are kept
out of every mix and out of the base model's pretraining, chosen by document id, so all
variants are measured on the same text. Results go to MLflow (a `forgetting` run with one
metric per variant and a plot) and to `bench/.data/forgetting.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VARIANTS = (("cpt-domain-only", 1.0), ("cpt-70-30", 0.7))
STAGES = ("ingest", "quality", "dedup_signatures", "dedup_buckets", "dedup_clusters", "dedup", "pii", "compliance",
          "decontaminate", "mix", "base_model", "pack", "cpt")  # fmt: skip


def variant_spec(base_doc: dict, base_model: str, fraction: float, steps: int | None) -> dict:
    doc = json.loads(json.dumps(base_doc))
    doc["base_model"] = {"name": "tiny-llama-demo", "path": base_model}
    doc["data"]["mix"]["domain_fraction"] = fraction
    doc["training"]["sft"] = {"enabled": False}
    doc["training"]["dpo"] = {"enabled": False}
    if steps:
        doc["training"]["cpt"]["max_steps"] = steps
    return doc


def plot(rows: dict[str, dict[str, float]], path: Path) -> None:
    from domainllm.plots import subplots, to_png

    fig, ax = subplots(figsize=(7, 3.5))
    names = list(rows)
    width = 0.38
    for i, group in enumerate(("domain", "general")):
        ax.bar([x + (i - 0.5) * width for x in range(len(names))], [rows[n][group] for n in names], width, label=f"{group} held-out")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("perplexity (lower is better)")
    ax.set_title("learning vs forgetting")
    ax.legend()
    path.write_bytes(to_png(fig))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", default=str(REPO / "examples" / "demo" / "spec.yaml"))
    p.add_argument("--demo-run", default="demo", help="the run whose base model every variant starts from")
    p.add_argument("--steps", type=int, default=None, help="CPT steps (default: the spec's)")
    p.add_argument("--out", default=str(REPO / "bench" / ".data" / "forgetting.json"))
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import mlflow

    from domainllm.env import home
    from domainllm.spec import load_spec
    from domainllm.stages.runner import run_stage
    from domainllm.tracking import experiment_id

    os.environ.setdefault("DOMAINLLM_HOME", str(REPO / ".domainllm"))
    base_model = json.loads((home() / "artifacts" / a.demo_run / "base_model" / "_manifest.json").read_text())["info"]["model_path"]
    base_doc = yaml.safe_load(Path(a.spec).read_text())
    rows: dict[str, dict[str, float]] = {}
    manifests = {}
    for label, fraction in VARIANTS:
        spec_path = home() / f"forgetting-{label}.yaml"
        spec_path.write_text(yaml.safe_dump(variant_spec(base_doc, base_model, fraction, a.steps), sort_keys=False))
        spec = load_spec(spec_path)
        for stage in STAGES:
            run_stage(spec, stage, f"forgetting-{label}")
        m = run_stage(spec, "cpt", f"forgetting-{label}").manifest
        manifests[label] = m
        rows.setdefault("base", {g: m.metrics[f"start.heldout.{g}.ppl"] for g in ("domain", "general")})
        rows[label] = {g: m.metrics[f"heldout.{g}.ppl"] for g in ("domain", "general")}

    print("\n| model | domain held-out ppl | general held-out ppl |\n|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['domain']:.1f} | {r['general']:.1f} |")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"perplexity": rows, "cpt_steps": {k: m.counts["steps"] for k, m in manifests.items()}}, indent=2))
    plot(rows, out.with_suffix(".png"))
    with mlflow.start_run(experiment_id=experiment_id(spec), run_name="forgetting", tags={"domainllm.kind": "experiment"}):
        mlflow.log_params({"variants": ", ".join(f"{k}={f}" for k, f in VARIANTS), "base_model": base_model,
                           "cpt_steps": manifests[VARIANTS[0][0]].counts["steps"]})  # fmt: skip
        mlflow.log_metrics({f"{name}.{g}.ppl": v for name, r in rows.items() for g, v in r.items()})
        mlflow.log_artifact(str(out.with_suffix(".png")))
        mlflow.log_artifact(str(out))
    print(f"\nresults: {out} and {out.with_suffix('.png')}; MLflow run 'forgetting' in experiment {spec.name!r}")


if __name__ == "__main__":
    main()
