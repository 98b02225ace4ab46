"""Stage `sft_data`: the SFT examples as chat messages, validated from the spec's file
(bad records quarantined with their reason) or built for the demo from its synopses."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from domainllm.artifacts.fs import folder_fingerprint, url_to_fs
from domainllm.data.docs import iter_docs
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.runner import StageError
from domainllm.train.example_store import SFT_SCHEMA, validate_records, write_examples, write_quarantine
from domainllm.train.examples import ExampleError, sft_messages


class SftDataStage:
    name: ClassVar[str] = "sft_data"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("decontaminate",)

    def required(self, spec: Spec) -> tuple[str, ...]:
        sft = spec.training.sft
        return self.requires if sft.enabled and sft.data is None else ()

    def config(self, spec: Spec) -> dict[str, Any]:
        sft = spec.training.sft
        return {"enabled": sft.enabled, "format": sft.format, "demo": sft.demo.model_dump(mode="json") if sft.demo else None}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        sft = spec.training.sft
        return {"sft_data": folder_fingerprint(sft.data)} if sft.enabled and sft.data else {}

    def run(self, ctx: StageContext) -> StageResult:
        sft = ctx.spec.training.sft
        if not sft.enabled:
            return StageResult(info={"enabled": False})
        counts: Counter = Counter()
        if sft.data is not None:
            fs, path = url_to_fs(sft.data)
            try:
                checked = validate_records(fs, path, lambda r: {"kind": "user", "messages": sft_messages(r, sft.format)})
            except (ExampleError, FileNotFoundError) as exc:
                raise StageError(f"training.sft.data: {exc}") from None
            rows, counts = checked.rows, checked.counts
            write_quarantine(ctx.out.fs, ctx.out.path, checked.quarantine)
        else:
            from domainllm.demo.instructions import build_sft_examples

            assert sft.demo is not None
            docs = [(d["id"], d["text"]) for d in iter_docs(ctx.layout.fs, ctx.upstream_dir("decontaminate"), sources=[sft.demo.source])]
            rows = list(build_sft_examples(docs, sft.demo.max_answer_chars))
            counts.update(documents=len(docs))
            if not rows:
                raise StageError(
                    f"training.sft.demo.source {sft.demo.source!r} gave no module synopses after decontamination; "
                    "name a source of 'Name - description / SYNOPSIS / code' documents"
                )
        counts.update(f"kind.{r['kind']}" for r in rows)
        counts["examples"] = write_examples(ctx.out.fs, ctx.out.path, rows, SFT_SCHEMA)
        turns = [sum(m["role"] == "assistant" for m in r["messages"]) for r in rows]
        return StageResult(counts=dict(counts), metrics={"assistant_turns_mean": sum(turns) / len(turns)},
                           info={"enabled": True})  # fmt: skip
