"""Stage `cpt`: continued pretraining of the base model on the packed data."""

from __future__ import annotations

import shutil
from typing import Any, ClassVar

from domainllm.artifacts.fs import is_local, join
from domainllm.plots import subplots, to_png
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.models import local_model
from domainllm.stages.runner import StageError

MODEL_DIR = "model"


class CptStage:
    name: ClassVar[str] = "cpt"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("pack", "base_model")

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        t = spec.training
        return {"cpt": t.cpt.model_dump(mode="json"), "checkpoint": t.checkpoint.model_dump(mode="json")}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.train.cpt import train_cpt
        from domainllm.train.packed import packed_dataset

        recipe = ctx.spec.training.cpt
        if not recipe.enabled:
            return StageResult(info={"model_path": ctx.upstream["base_model"].info.get("model_path"), "trained": False})
        fs = ctx.layout.fs
        if not is_local(fs):
            raise StageError(
                "the cpt stage keeps its resumable checkpoints beside the run and needs a local (or mounted) "
                f"artifact_root; {ctx.spec.artifact_root} is an object store, which training does not support yet"
            )
        train_ds, eval_ds = packed_dataset(fs, ctx.upstream_dir("pack"), recipe.eval_fraction)
        seq_len = int(ctx.upstream["pack"].info["seq_len"])
        base = ctx.upstream["base_model"].info.get("model_path") or ctx.spec.base_model.path
        ckpt_dir = ctx.layout.checkpoint_dir(self.name)
        with local_model(base) as base_path, ctx.out.local_dir(MODEL_DIR) as out_dir:
            result = train_cpt(recipe, ctx.spec.training.checkpoint, base_model=base_path, train_ds=train_ds,
                               eval_ds=eval_ds, seq_len=seq_len, ckpt_dir=ckpt_dir, fingerprint=ctx.fingerprint,
                               out_dir=out_dir)  # fmt: skip
        with ctx.out.fs.open(ctx.out.file("loss.png"), "wb") as fh:
            fh.write(_plot(result.curves))
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the model is about to be published
        return StageResult(
            counts=result.counts,
            metrics=result.metrics,
            info={"model_path": ctx.layout.url(join(ctx.layout.stage_dir(self.name), MODEL_DIR)), "trained": True,
                  "resumed_from": result.resumed_from},  # fmt: skip
            reports=["loss.png"],
            curves=result.curves,
        )


def _plot(curves: dict[str, list[tuple[int, float]]]) -> bytes:
    fig, ax = subplots(figsize=(6, 3.5))
    for name in ("train_loss", "eval_loss"):
        if curves.get(name):
            ax.plot([s for s, _ in curves[name]], [v for _, v in curves[name]], label=name, marker="." if name == "eval_loss" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("continued pretraining")
    ax.legend()
    return to_png(fig)
