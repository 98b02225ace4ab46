"""Stage `dpo_data`: (prompt, chosen, rejected) triples, validated from the spec's file (bad
records quarantined with their reason) or built for the demo: the SFT examples' reference
answers are chosen, answers sampled from the weaker CPT model rejected."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, ClassVar

from domainllm.artifacts.fs import folder_fingerprint, url_to_fs
from domainllm.spec import Spec
from domainllm.spec.training import DemoDpoData
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.models import local_model
from domainllm.stages.runner import StageError
from domainllm.train.example_store import (
    DPO_SCHEMA,
    read_examples,
    validate_records,
    write_examples,
    write_quarantine,
)
from domainllm.train.examples import ExampleError, dpo_triple

log = logging.getLogger(__name__)

DEMO_KINDS = ("what", "how")
"""Single-turn examples whose reference answers become the chosen ones."""


class DpoDataStage:
    name: ClassVar[str] = "dpo_data"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("sft_data", "cpt")

    def required(self, spec: Spec) -> tuple[str, ...]:
        dpo = spec.training.dpo
        return self.requires if dpo.enabled and dpo.data is None else ()

    def config(self, spec: Spec) -> dict[str, Any]:
        dpo = spec.training.dpo
        return {"enabled": dpo.enabled, "demo": dpo.demo.model_dump(mode="json") if dpo.demo else None,
                "flywheel_pairs": dpo.flywheel_pairs}  # fmt: skip

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        from domainllm.stages.curate import dataset_version

        dpo = spec.training.dpo
        inputs = {"dpo_data": folder_fingerprint(dpo.data)} if dpo.enabled and dpo.data else {}
        if dpo.enabled and dpo.flywheel_pairs:
            inputs["preferences"] = dataset_version(spec)
        return inputs

    def run(self, ctx: StageContext) -> StageResult:
        dpo = ctx.spec.training.dpo
        if not dpo.enabled:
            return StageResult(info={"enabled": False})
        if dpo.data is not None:
            fs, path = url_to_fs(dpo.data)
            try:
                checked = validate_records(fs, path, dpo_triple)
            except (ExampleError, FileNotFoundError) as exc:
                raise StageError(f"training.dpo.data: {exc}") from None
            write_quarantine(ctx.out.fs, ctx.out.path, checked.quarantine)
            rows, counts = checked.rows, checked.counts
        else:
            assert dpo.demo is not None
            rows, counts = self._demo(ctx, dpo.demo)
        version = None
        if dpo.flywheel_pairs:
            version, flywheel_rows = self._flywheel(ctx)
            rows.extend(flywheel_rows)
            counts["flywheel_pairs"] = len(flywheel_rows)
        counts["pairs"] = write_examples(ctx.out.fs, ctx.out.path, rows, DPO_SCHEMA)
        return StageResult(counts=dict(counts), info={"enabled": True, "preferences_version": version})

    def _flywheel(self, ctx: StageContext) -> tuple[str | None, list[dict]]:
        """Every pair of the flywheel's preference dataset, and its version."""
        from domainllm.flywheel.dataset import PreferenceDataset, dataset_root

        dataset = PreferenceDataset(dataset_root(ctx.spec))
        latest = dataset.latest()
        if latest is None:
            return None, []
        table = dataset.read(latest["version"], columns=["id", "prompt", "chosen", "rejected"])
        log.info("dpo_data: %d pairs from the flywheel's preference dataset %s (version %s)", table.num_rows, dataset.root,
                 latest["version"])  # fmt: skip
        return latest["version"], table.to_pylist()

    def _demo(self, ctx: StageContext, cfg: DemoDpoData) -> tuple[list[dict], Counter]:
        from domainllm.evals.generate import generate
        from domainllm.spec.evals import Decoding

        if not ctx.upstream["sft_data"].info.get("enabled", True):
            raise StageError("training.dpo.demo builds its triples from the SFT examples; enable training.sft (with demo or data)")
        examples = read_examples(ctx.layout.fs, ctx.upstream_dir("sft_data"), ["id", "kind", "messages"]).to_list()
        single = [e for e in examples if e["kind"] in DEMO_KINDS or (e["kind"] == "user" and len(e["messages"]) == 2)]
        step = max(1, len(single) // cfg.max_pairs)
        picked = single[::step][: cfg.max_pairs]
        prompts = [e["messages"][:-1] for e in picked]
        decoding = Decoding(temperature=cfg.temperature, top_k=0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        with local_model(ctx.upstream["cpt"].info["model_path"]) as weaker:
            rejected = [samples[0].strip() for samples in generate(weaker, prompts, decoding, batch_size=32)]
        rows, counts = [], Counter(candidates=len(picked))
        for e, prompt, bad in zip(picked, prompts, rejected, strict=True):
            good = e["messages"][-1]["content"]
            if not bad.strip() or bad.strip() == good.strip():
                counts["skipped.empty_or_same"] += 1
                continue
            rows.append({"id": e["id"], "prompt": prompt, "chosen": [{"role": "assistant", "content": good}],
                         "rejected": [{"role": "assistant", "content": bad}]})  # fmt: skip
        if not rows:
            raise StageError("the weaker model's answers were all empty or equal to the references: no preference pairs")
        return rows, counts
