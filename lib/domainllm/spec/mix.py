"""`data.mix`: domain/general proportions, per-source weights, curriculum and grouping."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from domainllm.spec.base import Location, Section


class CurriculumConfig(Section):
    order_by: Literal["none", "simplicity", "length", "perplexity"] = "simplicity"
    """`simplicity`: clean and simple first (short documents with few symbols and short
    words, prose before code); `length`: shortest first; `perplexity`: lowest perplexity
    under `model` first; `none`: shuffled."""
    model: Location | None = None
    """perplexity: a causal LM folder (a small reference model) to score documents with."""
    max_tokens: int = Field(default=512, ge=8)
    """perplexity: tokens of each document scored (its beginning)."""
    buckets: int = Field(default=8, ge=1)
    """Documents are split by score into this many consecutive stages; similar-document
    grouping happens within a stage, so it never undoes the curriculum."""

    @model_validator(mode="after")
    def _model_for_perplexity(self) -> CurriculumConfig:
        if self.order_by == "perplexity" and self.model is None:
            raise ValueError("order_by: perplexity needs `model`: a causal LM folder to score documents with")
        return self


class GroupingConfig(Section):
    """In-context pretraining: similar documents placed next to each other, so packed
    sequences hold related text."""

    method: Literal["none", "minhash", "embeddings"] = "minhash"
    """`minhash`: documents of one LSH cluster (Jaccard >= `similarity`) are adjacent;
    `embeddings`: a nearest-neighbour chain over sentence embeddings."""
    similarity: float = Field(default=0.3, gt=0.0, lt=1.0)
    """minhash: word 3-gram Jaccard similarity that links two documents."""
    embedding_model: Location | None = None
    """embeddings: a sentence-transformers folder; default: the packaged all-MiniLM-L6-v2."""
    window: int = Field(default=20_000, ge=2)
    """embeddings: documents searched together (the chain is exact within a window)."""


class MixConfig(Section):
    domain_fraction: float = Field(default=0.7, ge=0.0, le=1.0)
    """Share of domain text (in characters) in the mix; the rest is general text."""
    source_weights: dict[str, float] = Field(default_factory=dict)
    """Source -> multiplier on its natural share within its group (1.0 = as is, 2.0 =
    twice as much of it, 0 = leave it out)."""
    max_repeat: float = Field(default=4.0, ge=1.0)
    """Most times a document may appear (upsampling cap)."""
    target_chars: int | None = Field(default=None, ge=1)
    """Size of the mix. Null: every (weighted) domain document once, and as much general
    text as the ratio asks for."""
    seed: int = 0
    heldout_fraction: float = Field(default=0.01, ge=0.0, lt=0.5)
    """Share of the documents of every source kept out of the mix (chosen by id and seed
    only, so any mix ratio holds out the same ones) and written to `heldout/`: the domain
    and general held-out sets that measure learning and forgetting."""
    curriculum: CurriculumConfig = CurriculumConfig()
    grouping: GroupingConfig = GroupingConfig()
