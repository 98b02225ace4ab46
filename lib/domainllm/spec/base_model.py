"""`base_model`: the general model the domain model starts from."""

from __future__ import annotations

from pydantic import Field, model_validator

from domainllm.spec.base import Location, Section


class DemoBaseModel(Section):
    """Build a tiny base model locally (no hub is reachable): a byte-level BPE tokenizer
    and a small Llama pretrained briefly on the general corpus."""

    corpus_sources: tuple[str, ...]
    """Names of ingested sources to pretrain on (the general corpus)."""
    tokenizer_sources: tuple[str, ...] = ()
    """Names of ingested sources to train the tokenizer on; empty means `corpus_sources`."""
    vocab_size: int = Field(default=4096, ge=300)
    hidden_size: int = Field(default=128, ge=16)
    intermediate_size: int = Field(default=352, ge=16)
    num_layers: int = Field(default=4, ge=1)
    num_heads: int = Field(default=4, ge=1)
    seq_len: int = Field(default=256, ge=16)
    batch_size: int = Field(default=8, ge=1)
    steps: int = Field(default=300, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    max_train_chars: int = Field(default=8_000_000, ge=1000)
    """Cap on corpus characters read for tokenizer and model training."""
    seed: int = 0

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> DemoBaseModel:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        return self


class BaseModelConfig(Section):
    path: Location | None = None
    """A Hugging Face model folder (local path or object-store URI) to start from."""
    demo: DemoBaseModel | None = None
    """Build a tiny demo model instead of naming one."""
    name: str = "base"
    """How the base model is called in MLflow and reports."""

    @model_validator(mode="after")
    def _exactly_one(self) -> BaseModelConfig:
        if (self.path is None) == (self.demo is None):
            raise ValueError(
                "set exactly one of `path` (your own Hugging Face model folder) or "
                "`demo` (build a tiny model locally)"
            )
        return self
