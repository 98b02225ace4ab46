"""`training`: the CPT -> SFT -> DPO recipes, their optimizer and schedule, LoRA, DeepSpeed
and checkpointing. Defaults follow the brief: a learning rate well below pretraining's,
~10% warmup then cosine decay, bf16 where the hardware has it, gradient checkpointing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from domainllm.spec.base import Location, Section

Offload = Literal["none", "cpu", "nvme"]


class LoraConfig(Section):
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """Module names to adapt (Llama/Qwen/Mistral naming); `all-linear` adapts every linear layer."""
    merge: bool = True
    """Also save the adapter merged into the base weights (a plain model for serving)."""


class OptimConfig(Section):
    learning_rate: float = Field(default=3e-5, gt=0)
    """Well below pretraining's: continued training on a pretrained base forgets less."""
    weight_decay: float = Field(default=0.1, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    max_grad_norm: float = Field(default=1.0, gt=0)
    adam_beta1: float = Field(default=0.9, gt=0, lt=1)
    adam_beta2: float = Field(default=0.95, gt=0, lt=1)


class DeepSpeedConfig(Section):
    zero_stage: Literal["auto", 0, 1, 2, 3] = "auto"
    """`auto`: what `domainllm plan` recommends for the model and the stage's resources."""
    offload_optimizer: Offload = "none"
    offload_params: Offload = "none"
    """Offload targets when `zero_stage` is set by hand (ZeRO-Infinity: `nvme`)."""
    nvme_path: str = "/local_nvme"
    """Where NVMe offload writes, on each node."""

    @model_validator(mode="after")
    def _offload_fits_stage(self) -> DeepSpeedConfig:
        if self.offload_params != "none" and self.zero_stage not in ("auto", 3):
            raise ValueError("offload_params needs zero_stage 3 (only ZeRO-3 partitions the parameters)")
        if self.offload_optimizer != "none" and self.zero_stage in (0,):
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3")
        return self


class CheckpointConfig(Section):
    every_steps: int = Field(default=200, ge=1)
    keep: int = Field(default=2, ge=1)
    """Complete checkpoints kept; a rerun of a killed stage resumes from the newest."""


class Recipe(Section):
    enabled: bool = True
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    """Caps the run; null: `epochs` over the data."""
    micro_batch_size: int = Field(default=4, ge=1)
    gradient_accumulation: int = Field(default=1, ge=1)
    seq_len: int | None = Field(default=None, ge=16)
    """Null: the packed data's (CPT) or `data.pack.seq_len` (SFT, DPO)."""
    lora: LoraConfig | None = None
    """Null: full fine-tune."""
    optim: OptimConfig = OptimConfig()
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """`auto`: bf16 on GPUs that have it, fp32 on CPU."""
    attention: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    """`auto`: Flash Attention 2 when installed on a supporting GPU, else SDPA (logged)."""
    gradient_checkpointing: bool = True
    eval_every_steps: int = Field(default=100, ge=1)
    eval_fraction: float = Field(default=0.02, gt=0, lt=0.5)
    """Share of the data held out for evaluation."""
    early_stopping_patience: int | None = Field(default=None, ge=1)
    """Evaluations without an eval-loss improvement before stopping; null: never."""
    seed: int = 0


class CptConfig(Recipe):
    """Continued pretraining on the packed data of the data stages."""


class SftConfig(Recipe):
    data: Location | None = None
    """JSONL/Parquet of Alpaca (`instruction`, `input`, `output`) or chat (`messages`,
    ShareGPT `conversations`) records. Null: the demo's built examples."""
    format: Literal["auto", "alpaca", "messages"] = "auto"
    assistant_only_loss: bool = True
    packing: bool = True
    """Best-fit-decreasing packing of examples (TRL), no cross-example attention."""
    epochs: float = Field(default=2.0, gt=0)
    optim: OptimConfig = OptimConfig(learning_rate=2e-5)


class DpoConfig(Recipe):
    data: Location | None = None
    """JSONL/Parquet with `prompt`, `chosen`, `rejected` (strings or messages). Null: the
    demo's built triples."""
    beta: float = Field(default=0.1, gt=0)
    reference: Literal["auto", "implicit", "explicit", "precomputed"] = "auto"
    """`implicit`: the LoRA base is the reference (no second model); `explicit`: a frozen
    copy; `precomputed`: reference log-probs computed once up front. `auto`: implicit with
    LoRA, precomputed otherwise."""
    optim: OptimConfig = OptimConfig(learning_rate=5e-7, warmup_ratio=0.1)


class TrainingConfig(Section):
    cpt: CptConfig = CptConfig()
    sft: SftConfig = SftConfig()
    dpo: DpoConfig = DpoConfig()
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
