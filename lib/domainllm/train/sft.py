"""Supervised fine-tuning, top to bottom: chat examples -> TRL's SFTTrainer with the loss on
assistant turns only (the chat template's `{% generation %}` marks), whole examples packed
best-fit-decreasing without attention across them -> a chat model that stops at the end of
its turn."""

from __future__ import annotations

import logging

from domainllm.spec.training import CheckpointConfig, SftConfig
from domainllm.train.results import TrainResult

log = logging.getLogger(__name__)


def train_sft(recipe: SftConfig, ckpt: CheckpointConfig, *, model_path: str, train_ds, eval_ds, seq_len: int,
              ckpt_dir: str, fingerprint: str, out_dir: str, deepspeed: dict | None = None) -> TrainResult:  # fmt: skip
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from domainllm.train.args import trainer_callbacks, training_arguments
    from domainllm.train.callbacks import CurveRecorder, quiet
    from domainllm.train.checkpoints import prepare_checkpoints
    from domainllm.train.model_io import load_model, save_trained
    from domainllm.train.packed import PackedRowsCollator
    from domainllm.train.results import finish

    # 1. Resume point and settings (before the model: under ZeRO-3 loading is partitioned)
    resume = prepare_checkpoints(ckpt_dir, fingerprint)
    has_eval = eval_ds is not None and len(eval_ds) > 0
    args = training_arguments(
        recipe, ckpt, ckpt_dir, has_eval=has_eval, deepspeed=deepspeed, config_class=SFTConfig,
        max_length=seq_len, packing=recipe.packing, packing_strategy="bfd",
        assistant_only_loss=recipe.assistant_only_loss, include_num_input_tokens_seen=True,
    )  # fmt: skip

    # 2. Tokenizer (its chat template marks the assistant turns) and model
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if recipe.assistant_only_loss and "generation" not in (tokenizer.chat_template or ""):
        raise ValueError(
            f"training.sft.assistant_only_loss needs a chat template with {{% generation %}} marks around assistant "
            f"turns; the tokenizer of {model_path} has none. Set assistant_only_loss: false or add the marks."
        )
    model = load_model(model_path, recipe)

    # 3. Train on the messages (from the checkpoint when there is one), then save on rank 0
    columns = ["messages"]
    train_ds = train_ds.select_columns(columns)
    eval_ds = eval_ds.select_columns(columns) if has_eval else None
    recorder = CurveRecorder()
    # packed rows: flattened into one sequence for Flash Attention's varlen kernel (TRL's
    # default), kept as rows for SDPA/eager, where one long sequence costs quadratically more
    trainer = quiet(SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
                               callbacks=trainer_callbacks(recipe, recorder, has_eval)))  # fmt: skip
    if recipe.packing and model.config._attn_implementation != "flash_attention_2":
        trainer.data_collator = PackedRowsCollator(tokenizer.pad_token_id)  # TRL refuses it in its constructor
    output = trainer.train(resume_from_checkpoint=resume)
    result = finish(trainer, output, recorder, resumed_from=resume, has_eval=has_eval)
    result.counts["train_examples"] = len(train_ds)
    save_trained(trainer, tokenizer, out_dir, base_model=model_path, merge_lora=bool(recipe.lora and recipe.lora.merge))
    return result
