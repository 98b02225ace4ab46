"""Stage `cpt`: continued pretraining of the base model on the packed data."""

from __future__ import annotations

import os
import tempfile
from typing import ClassVar

from domainllm.artifacts.fs import folder_fingerprint
from domainllm.distributed import is_rank_zero
from domainllm.spec import Spec
from domainllm.spec.training import ChatVectorConfig, Recipe
from domainllm.stages.base import StageContext
from domainllm.stages.models import local_model
from domainllm.stages.runner import StageError
from domainllm.stages.training import TrainingStage
from domainllm.train.results import TrainResult


class CptStage(TrainingStage):
    name: ClassVar[str] = "cpt"
    requires: ClassVar[tuple[str, ...]] = ("pack", "base_model")
    starts_from: ClassVar[str] = "base_model"
    title: ClassVar[str] = "continued pretraining"
    eval_start: ClassVar[bool] = True

    def recipe(self, spec: Spec) -> Recipe:
        return spec.training.cpt

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        cv = spec.training.cpt.chat_vector
        if cv is None or not spec.training.cpt.enabled:
            return {}
        base = cv.base_model or spec.base_model.path
        if base is None:
            raise StageError("training.cpt.chat_vector needs `base_model`: the model its chat model was tuned from "
                             "(the demo base model is built here, so no chat model can share it)")  # fmt: skip
        return {"chat_vector.chat_model": folder_fingerprint(cv.chat_model), "chat_vector.base_model": folder_fingerprint(base)}

    def seq_len(self, ctx: StageContext) -> int:
        return int(ctx.upstream["pack"].info["seq_len"])

    def train(self, ctx: StageContext, *, model_path: str, out_dir: str, seq_len: int, deepspeed: dict | None) -> TrainResult:
        from domainllm.train.cpt import train_cpt
        from domainllm.train.packed import packed_dataset

        recipe = ctx.spec.training.cpt
        train_ds, eval_ds = packed_dataset(ctx.layout.fs, ctx.upstream_dir("pack"), recipe.eval_fraction)
        result = train_cpt(recipe, ctx.spec.training.checkpoint, base_model=model_path, train_ds=train_ds, eval_ds=eval_ds,
                           seq_len=seq_len, ckpt_dir=ctx.layout.checkpoint_dir(self.name), fingerprint=ctx.fingerprint,
                           out_dir=out_dir, deepspeed=deepspeed)  # fmt: skip
        if recipe.chat_vector is not None and is_rank_zero():
            result.counts["chat_vector_params"] = _add_chat_vector(recipe.chat_vector, ctx.spec.base_model.path, out_dir)
        return result


def _add_chat_vector(cv: ChatVectorConfig, spec_base: str | None, out_dir: str) -> int:
    """Replaces the trained model in `out_dir` by trained + scale * (chat - base)."""
    from domainllm.train.chat_vector import apply_chat_vector

    base = cv.base_model or spec_base
    assert base is not None  # checked in external_inputs
    with local_model(cv.chat_model) as chat, local_model(base) as base_path, tempfile.TemporaryDirectory(dir=os.path.dirname(out_dir)) as tmp:
        report = apply_chat_vector(out_dir, chat, base_path, tmp, scale=cv.scale, skip=cv.skip)
        for name in os.listdir(tmp):
            if name.endswith((".safetensors", ".json")) and name != "training.json":
                os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    return report.added
