"""Stage `pack`: the mix, tokenized with the base model's tokenizer, packed into
`data.pack.seq_len`-token sequences for the training stages."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from domainllm.artifacts.fs import join
from domainllm.data.docs import iter_docs
from domainllm.data.pack import pack
from domainllm.plots import subplots, to_png
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.models import local_model

PACK_INFO = "pack.json"


class PackStage:
    name: ClassVar[str] = "pack"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("mix", "base_model")

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        return spec.data.pack.model_dump(mode="json")

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}

    def run(self, ctx: StageContext) -> StageResult:
        cfg = ctx.spec.data.pack
        model_path = ctx.upstream["base_model"].info.get("model_path") or ctx.spec.base_model.path
        from transformers import AutoTokenizer

        with local_model(model_path) as path:
            tokenizer = AutoTokenizer.from_pretrained(path)
        docs = iter_docs(ctx.layout.fs, ctx.upstream_dir("mix"), columns=("text", "source"))
        result = pack(docs, tokenizer, cfg.seq_len, ctx.out.fs, ctx.out.path, batch_docs=cfg.batch_docs,
                      sequences_per_shard=cfg.sequences_per_shard)  # fmt: skip
        total = sum(result.tokens_by_source.values())
        info = {"seq_len": cfg.seq_len, "tokenizer": model_path, "eos_token_id": tokenizer.eos_token_id,
                "tokens": total, "tokens_by_source": dict(result.tokens_by_source),
                "columns": ["input_ids", "position_ids", "doc_lens"]}  # fmt: skip
        with ctx.out.fs.open(join(ctx.out.path, PACK_INFO), "wb") as fh:
            fh.write(json.dumps(info, indent=2).encode() + b"\n")
        with ctx.out.fs.open(join(ctx.out.path, "report.png"), "wb") as fh:
            fh.write(_plot(result.tokens_by_source))
        return StageResult(
            counts={"sequences": result.sequences, "docs": result.docs, "docs_split": result.docs_split,
                    "tokens": total, "tail_tokens_dropped": result.tail_tokens_dropped,
                    **{f"tokens.{k}": v for k, v in result.tokens_by_source.items()}},  # fmt: skip
            metrics={"fill": 1.0 - result.tail_tokens_dropped / max(total, 1)},
            info={"seq_len": cfg.seq_len, "tokenizer": model_path},
            reports=[PACK_INFO, "report.png"],
        )


def _plot(tokens: dict[str, int]) -> bytes:
    fig, ax = subplots(figsize=(6, 3.5))
    names = sorted(tokens)
    ax.barh(names, [tokens[n] / 1e3 for n in names])
    ax.set_xlabel("thousand tokens")
    ax.set_title("tokens per source in the packed data")
    return to_png(fig)
