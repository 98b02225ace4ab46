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


class ChatVectorConfig(Section):
    """Chat Vector: after CPT, add `scale * (chat_model - base_model)` to the weights, giving
    the domain model back the chat skills of a chat model tuned from the same base."""

    chat_model: Location
    """A chat/instruct model fine-tuned from the same base (same architecture and shapes)."""
    base_model: Location | None = None
    """The base that chat model was tuned from; null: the spec's `base_model.path`."""
    scale: float = Field(default=1.0, gt=0)
    skip: tuple[str, ...] = ("embed_tokens", "lm_head")
    """Parameter name parts left as trained (the paper leaves embeddings and the head alone)."""


class CptConfig(Recipe):
    """Continued pretraining on the packed data of the data stages."""

    chat_vector: ChatVectorConfig | None = None
    """Optional: add a chat vector to the trained model (one remedy for forgetting chat skills)."""


def _disable_without_data(recipe: Recipe, message: str) -> None:
    """SFT and DPO run when they have data: without any they are off, unless the spec
    explicitly enables them, which is an error."""
    if "enabled" in recipe.model_fields_set and recipe.enabled:
        raise ValueError(message)
    object.__setattr__(recipe, "enabled", False)


class DemoSftData(Section):
    """Build SFT examples from an ingested source of Perl-style module synopses (the demo):
    questions about each module answered from its description and synopsis, multi-turn
    conversations, and robustness variants (typos, other languages). Built from the
    decontaminated documents, so evaluation items never become training examples."""

    source: str = "perl-synopses"
    max_answer_chars: int = Field(default=600, ge=50)
    """Synopses are cut at a line boundary to fit the sequence length."""


class SftConfig(Recipe):
    """Supervised fine-tuning with TRL's SFTTrainer; on when it has `data` or `demo`."""

    data: Location | None = None
    """JSONL/Parquet file or folder of Alpaca (`instruction`, `input`, `output`) or chat
    (`messages`, ShareGPT `conversations`) records. Bad records are quarantined with a reason."""
    demo: DemoSftData | None = None
    """Without `data`: build the demo's examples instead."""
    format: Literal["auto", "alpaca", "messages"] = "auto"
    assistant_only_loss: bool = True
    """Loss on assistant turns only, through the chat template's `{% generation %}` marks."""
    packing: bool = True
    """Best-fit-decreasing packing of whole examples (TRL), no cross-example attention."""
    epochs: float = Field(default=2.0, gt=0, le=4)
    optim: OptimConfig = OptimConfig(learning_rate=2e-5)

    @model_validator(mode="after")
    def _has_data(self) -> SftConfig:
        if self.data is None and self.demo is None:
            _disable_without_data(self, "training.sft needs `data` (a JSONL/Parquet of examples) or `demo` (build the "
                                        "demo's examples); or set `enabled: false` to skip SFT")  # fmt: skip
        return self


class DemoDpoData(Section):
    """Build DPO triples from the SFT examples: chosen = the reference answer, rejected = an
    answer sampled from a weaker checkpoint (the CPT model, which was never taught to answer)."""

    max_pairs: int = Field(default=256, ge=1)
    max_new_tokens: int = Field(default=96, ge=1)
    temperature: float = Field(default=1.0, gt=0)
    seed: int = 0


class DpoConfig(Recipe):
    """Preference optimization with TRL's DPOTrainer; on when it has `data` or `demo`."""

    data: Location | None = None
    """JSONL/Parquet file or folder with `prompt`, `chosen`, `rejected` (strings or messages)."""
    demo: DemoDpoData | None = None
    """Without `data`: build the demo's triples instead."""
    flywheel_pairs: bool = True
    """Also train on every pair of the data flywheel's preference dataset (`flywheel.dataset`)
    when it has any: each round trains DPO from the SFT model on all preferences so far."""
    beta: float = Field(default=0.1, gt=0)
    reference: Literal["auto", "implicit", "explicit", "precomputed"] = "auto"
    """`implicit`: the LoRA base is the reference (no second model; needs `lora`);
    `explicit`: a frozen copy of the starting model; `precomputed`: reference log-probs
    computed once up front, then no reference model in memory. `auto`: implicit with LoRA,
    precomputed otherwise."""
    epochs: float = Field(default=1.0, gt=0, le=4)
    optim: OptimConfig = OptimConfig(learning_rate=5e-7, warmup_ratio=0.1)

    @model_validator(mode="after")
    def _has_data(self) -> DpoConfig:
        if self.data is None and self.demo is None:
            _disable_without_data(self, "training.dpo needs `data` (a JSONL/Parquet of prompt/chosen/rejected) or "
                                        "`demo` (build the demo's triples); or set `enabled: false` to skip DPO")  # fmt: skip
        if self.reference == "implicit" and self.lora is None:
            raise ValueError("training.dpo.reference `implicit` needs `lora` (the adapter-free model is the reference)")
        return self

    @property
    def reference_mode(self) -> str:
        if self.reference != "auto":
            return self.reference
        return "implicit" if self.lora is not None else "precomputed"


class TrainingConfig(Section):
    cpt: CptConfig = CptConfig()
    sft: SftConfig = SftConfig()
    dpo: DpoConfig = DpoConfig()
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    heldout_eval_tokens: int = Field(default=100_000, ge=0)
    """After each training stage, perplexity on the mix's domain and general held-out
    documents (up to this many tokens each): learning and forgetting in numbers. 0: off."""
