"""Stage `cpt`: continued pretraining of the base model on the packed data."""

from __future__ import annotations

from typing import ClassVar

from domainllm.spec import Spec
from domainllm.spec.training import Recipe
from domainllm.stages.base import StageContext
from domainllm.stages.training import TrainingStage
from domainllm.train.results import TrainResult


class CptStage(TrainingStage):
    name: ClassVar[str] = "cpt"
    requires: ClassVar[tuple[str, ...]] = ("pack", "base_model")
    starts_from: ClassVar[str] = "base_model"
    title: ClassVar[str] = "continued pretraining"

    def recipe(self, spec: Spec) -> Recipe:
        return spec.training.cpt

    def seq_len(self, ctx: StageContext) -> int:
        return int(ctx.upstream["pack"].info["seq_len"])

    def train(self, ctx: StageContext, *, model_path: str, out_dir: str, seq_len: int, deepspeed: dict | None) -> TrainResult:
        from domainllm.train.cpt import train_cpt
        from domainllm.train.packed import packed_dataset

        recipe = ctx.spec.training.cpt
        train_ds, eval_ds = packed_dataset(ctx.layout.fs, ctx.upstream_dir("pack"), recipe.eval_fraction)
        return train_cpt(recipe, ctx.spec.training.checkpoint, base_model=model_path, train_ds=train_ds, eval_ds=eval_ds,
                         seq_len=seq_len, ckpt_dir=ctx.layout.checkpoint_dir(self.name), fingerprint=ctx.fingerprint,
                         out_dir=out_dir, deepspeed=deepspeed)  # fmt: skip
