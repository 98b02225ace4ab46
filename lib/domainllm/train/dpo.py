"""Direct preference optimization, top to bottom: (prompt, chosen, rejected) chat triples ->
TRL's DPOTrainer with the reference model the spec asks for -> a model that prefers the
chosen answers. Reference: implicit (LoRA: the model without its adapter), explicit (a frozen
copy) or precomputed (log-probs computed once before training, then no reference in memory)."""

from __future__ import annotations

import logging

from domainllm.spec.training import CheckpointConfig, DpoConfig
from domainllm.train.results import TrainResult

log = logging.getLogger(__name__)

REWARD_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "eval_rewards/margins",
               "eval_rewards/accuracies")  # fmt: skip


def train_dpo(recipe: DpoConfig, ckpt: CheckpointConfig, *, model_path: str, train_ds, eval_ds, seq_len: int,
              ckpt_dir: str, fingerprint: str, out_dir: str, deepspeed: dict | None = None) -> TrainResult:  # fmt: skip
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from domainllm.train.args import attention_implementation, trainer_callbacks, training_arguments
    from domainllm.train.callbacks import CurveRecorder, quiet
    from domainllm.train.checkpoints import prepare_checkpoints
    from domainllm.train.model_io import load_model, save_trained, use_bf16
    from domainllm.train.results import finish

    # 1. Resume point and settings (before the models: under ZeRO-3 loading is partitioned)
    resume = prepare_checkpoints(ckpt_dir, fingerprint)
    has_eval = eval_ds is not None and len(eval_ds) > 0
    reference = recipe.reference_mode
    args = training_arguments(
        recipe, ckpt, ckpt_dir, has_eval=has_eval, deepspeed=deepspeed, config_class=DPOConfig,
        beta=recipe.beta, max_length=seq_len, precompute_ref_log_probs=reference == "precomputed",
        include_num_input_tokens_seen=True,
    )  # fmt: skip
    log.info("DPO: beta %.3g, reference %s", recipe.beta, reference)

    # 2. Tokenizer, policy and (explicit only) the frozen reference
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = load_model(model_path, recipe)
    ref_model = None
    if reference in ("explicit", "precomputed") and recipe.lora is None:
        # precomputed: used once for the log-probs before training, then released by TRL
        import torch

        ref_model = AutoModelForCausalLM.from_pretrained(
            model_path, attn_implementation=attention_implementation(recipe.attention),
            dtype=torch.bfloat16 if use_bf16(recipe) else torch.float32,
        )  # fmt: skip

    # 3. Train (from the checkpoint when there is one), then save on rank 0
    columns = ["prompt", "chosen", "rejected"]
    train_ds = train_ds.select_columns(columns)
    eval_ds = eval_ds.select_columns(columns) if has_eval else None
    recorder = CurveRecorder()
    trainer = quiet(DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, callbacks=trainer_callbacks(recipe, recorder, has_eval)))  # fmt: skip
    output = trainer.train(resume_from_checkpoint=resume)
    result = finish(trainer, output, recorder, resumed_from=resume, has_eval=has_eval, extra=REWARD_KEYS)
    margins = result.curves.get("rewards.margins", [])
    if margins:
        result.metrics.update(reward_margin_first=margins[0][1], reward_margin_last=margins[-1][1])
    result.counts["train_pairs"] = len(train_ds)
    save_trained(trainer, tokenizer, out_dir, base_model=model_path, merge_lora=bool(recipe.lora and recipe.lora.merge))
    return result
