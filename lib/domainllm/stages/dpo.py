"""Stage `dpo`: preference optimization of the SFT model on the `dpo_data` triples."""

from __future__ import annotations

from typing import ClassVar

from domainllm.spec import Spec
from domainllm.spec.training import Recipe
from domainllm.stages.base import StageContext
from domainllm.stages.training import TrainingStage
from domainllm.train.results import TrainResult


class DpoStage(TrainingStage):
    name: ClassVar[str] = "dpo"
    requires: ClassVar[tuple[str, ...]] = ("dpo_data", "sft")
    starts_from: ClassVar[str] = "sft"
    title: ClassVar[str] = "preference optimization (DPO)"

    def recipe(self, spec: Spec) -> Recipe:
        return spec.training.dpo

    def seq_len(self, ctx: StageContext) -> int:
        return ctx.spec.training.dpo.seq_len or ctx.spec.data.pack.seq_len

    def train(self, ctx: StageContext, *, model_path: str, out_dir: str, seq_len: int, deepspeed: dict | None) -> TrainResult:
        from domainllm.train.dpo import train_dpo
        from domainllm.train.example_store import read_examples, split_every

        recipe = ctx.spec.training.dpo
        triples = read_examples(ctx.layout.fs, ctx.upstream_dir("dpo_data"), ["id", "prompt", "chosen", "rejected"],
                                  cache_dir=self.dataset_cache(ctx))
        train_ds, eval_ds = split_every(triples, recipe.eval_fraction)
        return train_dpo(recipe, ctx.spec.training.checkpoint, model_path=model_path, train_ds=train_ds, eval_ds=eval_ds,
                         seq_len=seq_len, ckpt_dir=ctx.layout.checkpoint_dir(self.name), fingerprint=ctx.fingerprint,
                         out_dir=out_dir, deepspeed=deepspeed)  # fmt: skip
