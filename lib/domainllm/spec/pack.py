"""`data.pack`: tokenize the mix and pack it into fixed-length training sequences."""

from __future__ import annotations

from pydantic import Field

from domainllm.spec.base import Section


class PackConfig(Section):
    seq_len: int = Field(default=2048, ge=16)
    """Tokens per training sequence (the training stages' context length)."""
    sequences_per_shard: int = Field(default=10_000, ge=1)
    """Output shard size; memory is bounded by one shard plus one tokenizer batch."""
    batch_docs: int = Field(default=256, ge=1)
    """Documents tokenized per call."""
