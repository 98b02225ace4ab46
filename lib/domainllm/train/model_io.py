"""Loading the model a recipe trains (full or LoRA) and saving what it produced: a Hugging
Face folder whose generation config stops at the chat template's end of turn."""

from __future__ import annotations

import logging
import os

from domainllm.spec.training import Recipe

log = logging.getLogger(__name__)


def use_bf16(recipe: Recipe) -> bool:
    from domainllm.train.args import hardware

    return recipe.precision == "bf16" or (recipe.precision == "auto" and hardware()["bf16"])


def load_model(path: str, recipe: Recipe):
    import torch
    from transformers import AutoModelForCausalLM

    from domainllm.train.args import attention_implementation

    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention_implementation(recipe.attention),
                                                 dtype=torch.bfloat16 if use_bf16(recipe) else torch.float32)  # fmt: skip
    if recipe.lora is None:
        return model
    from peft import get_peft_model

    model = get_peft_model(model, peft_config(recipe))
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA r=%d alpha=%d: %d of %d parameters train", recipe.lora.r, recipe.lora.alpha, trainable, total)
    return model


def peft_config(recipe: Recipe):
    from peft import LoraConfig

    lora = recipe.lora
    assert lora is not None
    targets = "all-linear" if lora.target_modules == ("all-linear",) else list(lora.target_modules)
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                      task_type="CAUSAL_LM")  # fmt: skip


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: the tokenizer's EOS plus the special token the
    chat template writes right after an assistant message (`<|im_end|>`, `<|eot_id|>`, ...).
    Generation must stop at either, or a chat model talks past its answer."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if not getattr(tokenizer, "chat_template", None):
        return ids
    mark = "\u2603\u2603"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "q"}, {"role": "assistant", "content": mark}],
                                         tokenize=False)  # fmt: skip
    after = text.split(mark, 1)[1] if mark in text else ""
    special = set(tokenizer.all_special_ids)
    for tid in tokenizer(after, add_special_tokens=False)["input_ids"]:
        if tid in special:
            if tid not in ids:
                ids.append(tid)
            break
    return ids


def save_trained(trainer, tokenizer, out_dir: str, *, base_model: str, merge_lora: bool) -> dict[str, str] | None:
    """Saves the trained model from a (possibly distributed) trainer. Every rank must call
    it: under ZeRO-3 the weights are gathered from all ranks first. Rank 0 writes; the
    others return None. A LoRA adapter is merged into a freshly loaded base, so the merged
    folder is the same whatever the training was sharded across."""
    model = trainer.model_wrapped if trainer.is_deepspeed_enabled else trainer.model
    state = trainer.accelerator.get_state_dict(model)
    end_partitioned_loading()
    if not trainer.is_world_process_zero():
        return None
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    if not hasattr(unwrapped, "peft_config"):
        _finish_generation_config(unwrapped, tokenizer)
        unwrapped.save_pretrained(out_dir, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
        return {"model": "."}
    adapter_dir = os.path.join(out_dir, "adapter")
    unwrapped.save_pretrained(adapter_dir, state_dict=state)
    tokenizer.save_pretrained(adapter_dir)
    if not merge_lora:
        return {"adapter": "adapter"}
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=unwrapped.dtype)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    _finish_generation_config(merged, tokenizer)
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {"adapter": "adapter", "model": "."}


def end_partitioned_loading() -> None:
    """After training: models loaded from here on (rank 0 alone merging LoRA, evaluating)
    load whole. Under ZeRO-3, transformers would otherwise partition every `from_pretrained`
    across the ranks (zero.Init), a collective the other ranks, done, never join."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


def _finish_generation_config(model, tokenizer) -> None:
    eos = end_of_turn_ids(tokenizer)
    if eos:
        model.generation_config.eos_token_id = eos if len(eos) > 1 else eos[0]
    if tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
