"""Stage `sft`: supervised fine-tuning of the CPT model on the `sft_data` examples."""

from __future__ import annotations

from typing import ClassVar

from domainllm.spec import Spec
from domainllm.spec.training import Recipe
from domainllm.stages.base import StageContext
from domainllm.stages.training import TrainingStage
from domainllm.train.results import TrainResult


class SftStage(TrainingStage):
    name: ClassVar[str] = "sft"
    requires: ClassVar[tuple[str, ...]] = ("sft_data", "cpt")
    starts_from: ClassVar[str] = "cpt"
    title: ClassVar[str] = "supervised fine-tuning"

    def recipe(self, spec: Spec) -> Recipe:
        return spec.training.sft

    def seq_len(self, ctx: StageContext) -> int:
        return ctx.spec.training.sft.seq_len or ctx.spec.data.pack.seq_len

    def train(self, ctx: StageContext, *, model_path: str, out_dir: str, seq_len: int, deepspeed: dict | None) -> TrainResult:
        from domainllm.train.example_store import read_examples, split_every
        from domainllm.train.sft import train_sft

        recipe = ctx.spec.training.sft
        examples = read_examples(ctx.layout.fs, ctx.upstream_dir("sft_data"), ["id", "messages"],
                                  cache_dir=self.dataset_cache(ctx))
        train_ds, eval_ds = split_every(examples, recipe.eval_fraction)
        return train_sft(recipe, ctx.spec.training.checkpoint, model_path=model_path, train_ds=train_ds, eval_ds=eval_ds,
                         seq_len=seq_len, ckpt_dir=ctx.layout.checkpoint_dir(self.name), fingerprint=ctx.fingerprint,
                         out_dir=out_dir, deepspeed=deepspeed)  # fmt: skip
