"""TrainingArguments from a recipe's settings: one place where the spec becomes the HF config."""

from __future__ import annotations

import logging
from typing import Any

from domainllm.spec.training import CheckpointConfig, Recipe

log = logging.getLogger(__name__)


def hardware() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {"cuda": cuda, "bf16": bool(cuda and torch.cuda.is_bf16_supported())}


def attention_implementation(requested: str) -> str:
    """Flash Attention 2 when asked for (or `auto` on a GPU that has it installed), else SDPA."""
    import importlib.util

    hw = hardware()
    if requested != "auto":
        choice = requested
    elif hw["cuda"] and importlib.util.find_spec("flash_attn") is not None:
        choice = "flash_attention_2"
    else:
        choice = "sdpa"
    log.info("attention: %s (requested %s; CUDA %s)", choice, requested, "yes" if hw["cuda"] else "no")
    return choice


def training_arguments(recipe: Recipe, ckpt: CheckpointConfig, output_dir: str, *, has_eval: bool,
                       deepspeed: dict | None = None, config_class: type | None = None, **overrides: Any):  # fmt: skip
    """`config_class`: TrainingArguments or a subclass (TRL's SFTConfig, DPOConfig); every
    setting is explicit, so TRL's different defaults (bf16 on) do not leak in."""
    from transformers import TrainingArguments

    hw = hardware()
    bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and hw["bf16"])
    o = recipe.optim
    args = {
        "output_dir": output_dir,
        "num_train_epochs": recipe.epochs,
        "max_steps": recipe.max_steps or -1,
        "per_device_train_batch_size": recipe.micro_batch_size,
        "per_device_eval_batch_size": recipe.micro_batch_size,
        "gradient_accumulation_steps": recipe.gradient_accumulation,
        "learning_rate": o.learning_rate,
        "weight_decay": o.weight_decay,
        "adam_beta1": o.adam_beta1,
        "adam_beta2": o.adam_beta2,
        "lr_scheduler_type": o.scheduler,
        "warmup_steps": o.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        "max_grad_norm": o.max_grad_norm,
        "bf16": bf16,
        "use_cpu": not hw["cuda"],
        "activation_checkpointing": recipe.gradient_checkpointing,
        "logging_steps": 1,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": recipe.eval_every_steps,
        "save_strategy": "steps",
        "save_steps": ckpt.every_steps,
        "save_total_limit": ckpt.keep,
        "load_best_model_at_end": bool(has_eval and recipe.early_stopping_patience),
        "metric_for_best_model": "eval_loss",
        "seed": recipe.seed,
        "data_seed": recipe.seed,
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "deepspeed": deepspeed,
    }
    args.update(overrides)
    return (config_class or TrainingArguments)(**args)


def trainer_callbacks(recipe: Recipe, recorder, has_eval: bool) -> list:
    """The progress/curve recorder, plus early stopping on eval loss when the recipe asks."""
    from transformers import EarlyStoppingCallback

    callbacks = [recorder]
    if has_eval and recipe.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    return callbacks
