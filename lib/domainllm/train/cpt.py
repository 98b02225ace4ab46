"""Continued pretraining, top to bottom: packed data in curriculum order -> base model
(full or LoRA) -> HF Trainer with checkpoints that a rerun resumes from -> a Hugging Face
model folder (LoRA: the adapter and the merged model)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from domainllm.spec.training import CheckpointConfig, CptConfig

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "domainllm-fingerprint.txt"


@dataclass
class TrainResult:
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    resumed_from: str | None = None


def _sequential_trainer():
    """HF's Trainer, but reading the training data in order: the mix's curriculum order is
    the order the model sees (a random sampler would undo it)."""
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class SequentialTrainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    return SequentialTrainer


def prepare_checkpoints(ckpt_dir: str, fingerprint: str) -> str | None:
    """The newest complete checkpoint of this very configuration and data, or None. Checkpoints
    of another fingerprint are removed: resuming them would mix two runs."""
    from transformers.trainer_utils import get_last_checkpoint

    marker = Path(ckpt_dir, FINGERPRINT_FILE)
    if os.path.isdir(ckpt_dir):
        same = marker.exists() and marker.read_text().strip() == fingerprint
        if not same:
            log.info("checkpoints in %s belong to another configuration; starting fresh", ckpt_dir)
            shutil.rmtree(ckpt_dir)
    os.makedirs(ckpt_dir, exist_ok=True)
    marker.write_text(fingerprint)
    return get_last_checkpoint(ckpt_dir)


def load_model(path: str, recipe: CptConfig):
    import torch
    from transformers import AutoModelForCausalLM

    from domainllm.train.args import attention_implementation, hardware

    bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and hardware()["bf16"])
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention_implementation(recipe.attention),
                                                 dtype=torch.bfloat16 if bf16 else torch.float32)  # fmt: skip
    if recipe.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = recipe.lora
        targets = "all-linear" if lora.target_modules == ("all-linear",) else list(lora.target_modules)
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=targets, task_type="CAUSAL_LM"))  # fmt: skip
        trainable, total = model.get_nb_trainable_parameters()
        log.info("LoRA r=%d alpha=%d on %s: %d of %d parameters train", lora.r, lora.alpha, targets, trainable, total)
    return model


def save_model(model, tokenizer, out_dir: str, merge_lora: bool) -> dict[str, str]:
    """A Hugging Face folder; for LoRA also the adapter (`adapter/`) and, if asked, the
    adapter merged into the base weights as the main folder."""
    saved = {}
    if hasattr(model, "peft_config"):
        model.save_pretrained(os.path.join(out_dir, "adapter"))
        tokenizer.save_pretrained(os.path.join(out_dir, "adapter"))
        saved["adapter"] = "adapter"
        if not merge_lora:
            return saved
        model = model.merge_and_unload()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    saved["model"] = "."
    return saved


def history_curves(log_history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        for key, name in (("loss", "train_loss"), ("learning_rate", "learning_rate"), ("grad_norm", "grad_norm"),
                          ("eval_loss", "eval_loss")):  # fmt: skip
            if key in entry and "step" in entry:
                curves.setdefault(name, []).append((int(entry["step"]), float(entry[key])))
    return curves


def train_cpt(recipe: CptConfig, ckpt: CheckpointConfig, *, base_model: str, train_ds, eval_ds, seq_len: int,
              ckpt_dir: str, fingerprint: str, out_dir: str, deepspeed: dict | None = None) -> TrainResult:  # fmt: skip
    from transformers import AutoTokenizer, EarlyStoppingCallback

    from domainllm.train.args import training_arguments
    from domainllm.train.callbacks import CurveRecorder
    from domainllm.train.packed import PackedCollator

    resume = prepare_checkpoints(ckpt_dir, fingerprint)
    if resume:
        log.info("resuming from %s", resume)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = load_model(base_model, recipe)
    has_eval = eval_ds is not None and len(eval_ds) > 0
    args = training_arguments(recipe, ckpt, ckpt_dir, has_eval=has_eval, deepspeed=deepspeed)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    tokens_per_step = recipe.micro_batch_size * recipe.gradient_accumulation * seq_len * world
    recorder = CurveRecorder(tokens_per_step)
    callbacks = [recorder]
    if has_eval and recipe.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    trainer = _sequential_trainer()(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds if has_eval else None,
                                    data_collator=PackedCollator(), callbacks=callbacks)  # fmt: skip
    output = trainer.train(resume_from_checkpoint=resume)
    # loss, learning rate, grad norm and eval loss from the trainer's history: after a resume
    # it holds the steps before the kill too (the recorder only saw this attempt's)
    curves = {**recorder.curves, **history_curves(trainer.state.log_history)}
    result = TrainResult(curves=curves, resumed_from=resume)
    result.metrics["train_loss"] = float(output.training_loss)
    if has_eval:
        result.metrics["eval_loss"] = float(trainer.evaluate()["eval_loss"])
    losses = curves.get("train_loss", [])
    if losses:
        result.metrics.update(train_loss_first=losses[0][1], train_loss_last=losses[-1][1])
    tps = recorder.curves.get("tokens_per_s", [])
    if tps:
        result.metrics["tokens_per_s"] = tps[-1][1]
    result.counts.update(steps=int(trainer.state.global_step), train_sequences=len(train_ds),
                         train_tokens=int(trainer.state.global_step) * tokens_per_step)  # fmt: skip
    if trainer.is_world_process_zero():
        saved = save_model(trainer.model, tokenizer, out_dir, merge_lora=bool(recipe.lora and recipe.lora.merge))
        with open(os.path.join(out_dir, "training.json"), "w") as fh:
            json.dump({"recipe": recipe.model_dump(mode="json"), "resumed_from": resume, "saved": saved}, fh, indent=2)
    return result
