"""Continued pretraining, top to bottom: packed data in curriculum order -> base model
(full or LoRA) -> HF Trainer with checkpoints that a rerun resumes from -> a Hugging Face
model folder (LoRA: the adapter and the merged model)."""

from __future__ import annotations

import logging
import os

from domainllm.spec.training import CheckpointConfig, CptConfig
from domainllm.train.results import TrainResult

log = logging.getLogger(__name__)


def _sequential_trainer():
    """HF's Trainer, but reading the training data in order: the mix's curriculum order is
    the order the model sees (a random sampler would undo it)."""
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class SequentialTrainer(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    return SequentialTrainer


def train_cpt(recipe: CptConfig, ckpt: CheckpointConfig, *, base_model: str, train_ds, eval_ds, seq_len: int,
              ckpt_dir: str, fingerprint: str, out_dir: str, deepspeed: dict | None = None) -> TrainResult:  # fmt: skip
    from transformers import AutoTokenizer

    from domainllm.train.args import trainer_callbacks, training_arguments
    from domainllm.train.callbacks import CurveRecorder, quiet
    from domainllm.train.checkpoints import prepare_checkpoints
    from domainllm.train.model_io import load_model, save_trained
    from domainllm.train.packed import PackedCollator
    from domainllm.train.results import finish

    # 1. Resume point and settings (before the model: under ZeRO-3 loading is partitioned)
    resume = prepare_checkpoints(ckpt_dir, fingerprint)
    has_eval = eval_ds is not None and len(eval_ds) > 0
    args = training_arguments(recipe, ckpt, ckpt_dir, has_eval=has_eval, deepspeed=deepspeed)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = load_model(base_model, recipe)

    # 2. Trainer: packed full-length sequences, read in order; fixed tokens per step
    world = int(os.environ.get("WORLD_SIZE", "1"))
    recorder = CurveRecorder(tokens_per_step=recipe.micro_batch_size * recipe.gradient_accumulation * seq_len * world)
    trainer = quiet(_sequential_trainer()(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds if has_eval else None,
                                    data_collator=PackedCollator(), callbacks=trainer_callbacks(recipe, recorder, has_eval)))  # fmt: skip

    # 3. Train (from the checkpoint when there is one), then save on rank 0
    output = trainer.train(resume_from_checkpoint=resume)
    result = finish(trainer, output, recorder, resumed_from=resume, has_eval=has_eval)
    result.counts["train_sequences"] = len(train_ds)
    save_trained(trainer, tokenizer, out_dir, base_model=base_model, merge_lora=bool(recipe.lora and recipe.lora.merge))
    return result
