"""What the cpt, sft and dpo stages share: start from the upstream model, keep resumable
checkpoints beside the run, pick DeepSpeed from the spec or the planner, write a Hugging
Face model folder with the resolved training config, and plot the curves."""

from __future__ import annotations

import json
import os
import shutil
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from domainllm.artifacts.fs import is_local, join
from domainllm.distributed import init_process_group, is_rank_zero, world_size
from domainllm.env import home
from domainllm.plots import subplots, to_png
from domainllm.spec import Spec
from domainllm.spec.training import Recipe
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.models import local_model
from domainllm.stages.runner import StageError
from domainllm.train.results import TrainResult

MODEL_DIR = "model"


class TrainingStage(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]]
    starts_from: ClassVar[str]
    """The upstream stage whose `model_path` this stage trains further."""
    title: ClassVar[str]
    eval_start: ClassVar[bool] = False
    """Also measure the held-out perplexity of the starting model (the first training stage)."""

    @abstractmethod
    def recipe(self, spec: Spec) -> Recipe: ...

    @abstractmethod
    def seq_len(self, ctx: StageContext) -> int: ...

    @abstractmethod
    def train(self, ctx: StageContext, *, model_path: str, out_dir: str, seq_len: int, deepspeed: dict | None) -> TrainResult: ...

    def dataset_cache(self, ctx: StageContext) -> str:
        """Where the training data's tokenized copies live while the stage runs (shared by the ranks)."""
        return ctx.layout.checkpoint_dir(f"{self.name}.datasets")

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires if self.recipe(spec).enabled else (self.starts_from,)

    def config(self, spec: Spec) -> dict[str, Any]:
        t = spec.training
        return {self.name: self.recipe(spec).model_dump(mode="json"), "checkpoint": t.checkpoint.model_dump(mode="json"),
                "deepspeed": t.deepspeed.model_dump(mode="json"), "heldout_eval_tokens": t.heldout_eval_tokens}  # fmt: skip

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.train.deepspeed_config import resolve
        from domainllm.train.ds_ops import op_problem
        from domainllm.train.model_io import use_bf16

        recipe = self.recipe(ctx.spec)
        start = ctx.upstream[self.starts_from].info["model_path"]
        if not recipe.enabled:
            return StageResult(info={"model_path": start, "trained": False})
        if not is_local(ctx.layout.fs):
            raise StageError(
                f"the {self.name} stage keeps its resumable checkpoints beside the run and needs a local (or mounted) "
                f"artifact_root; {ctx.spec.artifact_root} is an object store, which training does not support yet"
            )
        # DeepSpeed compiles its ops on first use (~25 s): keep them in the project's cache
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(home() / "cache" / "torch_extensions"))
        seq_len = self.seq_len(ctx)
        with local_model(start) as model_path, ctx.out.local_dir(MODEL_DIR) as out_dir:
            if not os.path.exists(os.path.join(model_path, "config.json")):
                raise StageError(
                    f"{start} holds no full model to train further (only a LoRA adapter: the stage before "
                    f"{self.name} ran with lora.merge: false); set merge: true there"
                )
            deepspeed = resolve(ctx.spec.training.deepspeed, model_path, seq_len=seq_len,
                                micro_batch=recipe.micro_batch_size, bf16=use_bf16(recipe))  # fmt: skip
            # the native ops DeepSpeed will build (its comm op as the ranks join): probed first, cached
            if problem := op_problem(deepspeed, world=world_size()):
                raise StageError(problem)
            init_process_group()
            result = self.train(ctx, model_path=model_path, out_dir=out_dir, seq_len=seq_len, deepspeed=deepspeed)
            lineage = {"started_from": start, "inputs": {d: m.fingerprint for d, m in ctx.upstream.items()},
                       "resumed_from": result.resumed_from}  # fmt: skip
            if is_rank_zero():
                with open(os.path.join(out_dir, "training.json"), "w") as fh:
                    json.dump({"stage": self.name, "recipe": recipe.model_dump(mode="json"), "deepspeed": deepspeed,
                               "lineage": lineage, "training_arguments": result.resolved}, fh, indent=2, default=str)  # fmt: skip
                result.metrics.update(self._heldout(ctx, model_path, out_dir, seq_len))
        with ctx.out.fs.open(ctx.out.file("loss.png"), "wb") as fh:
            fh.write(_plot(result.curves, self.title))
        if is_rank_zero():  # the model is about to be published
            shutil.rmtree(ctx.layout.checkpoint_dir(self.name), ignore_errors=True)
            shutil.rmtree(self.dataset_cache(ctx), ignore_errors=True)
        model_url = ctx.layout.url(join(ctx.layout.stage_dir(self.name), MODEL_DIR))
        return StageResult(
            counts=result.counts,
            metrics=result.metrics,
            info={"model_path": model_url, "trained": True,
                  "deepspeed_zero_stage": (deepspeed or {}).get("zero_optimization", {}).get("stage"), **lineage},  # fmt: skip
            reports=["loss.png", f"{MODEL_DIR}/training.json"],
            tags={"domainllm.model_path": model_url, "domainllm.started_from": start,
                  **{f"domainllm.input.{d}": m.fingerprint for d, m in ctx.upstream.items()}},  # fmt: skip
            curves=result.curves,
        )

    def _heldout(self, ctx: StageContext, start: str, trained: str, seq_len: int) -> dict[str, float]:
        """Domain and general held-out perplexity of the trained (and, for the first stage,
        the starting) model: `heldout.<domain>.ppl`, `start.heldout.<domain>.ppl`."""
        from domainllm.evals.perplexity import as_metrics, mix_heldout, perplexity

        tokens = ctx.spec.training.heldout_eval_tokens
        docs = mix_heldout(ctx.layout.fs, ctx.layout.stage_dir("mix")) if tokens else []
        if not docs or not os.path.exists(os.path.join(trained, "config.json")):  # LoRA with merge: false
            return {}
        metrics = as_metrics(perplexity(trained, docs, seq_len=seq_len, max_tokens=tokens))
        if self.eval_start:
            metrics.update(as_metrics(perplexity(start, docs, seq_len=seq_len, max_tokens=tokens), "start.heldout"))
        return metrics


def _plot(curves: dict[str, list[tuple[int, float]]], title: str) -> bytes:
    margins = curves.get("rewards.margins")
    fig, axes = subplots(1, 2 if margins else 1, figsize=(11 if margins else 6, 3.5))
    ax = axes[0] if margins else axes
    for name in ("train_loss", "eval_loss"):
        if curves.get(name):
            ax.plot([s for s, _ in curves[name]], [v for _, v in curves[name]], label=name, marker="." if name == "eval_loss" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    if margins:
        axes[1].plot([s for s, _ in margins], [v for _, v in margins], label="reward margin (chosen - rejected)")
        axes[1].set_xlabel("step")
        axes[1].set_title("DPO reward margin")
        axes[1].legend()
    return to_png(fig)
