"""`data`: settings of the data stages."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domainllm.spec.base import Section
from domainllm.spec.compliance import ComplianceConfig
from domainllm.spec.decontam import DecontamConfig
from domainllm.spec.dedup import DedupConfig
from domainllm.spec.mix import MixConfig
from domainllm.spec.pack import PackConfig
from domainllm.spec.pii import PiiConfig
from domainllm.spec.quality import QualityConfig

MiB = 1024 * 1024


class IngestConfig(Section):
    shard_max_records: int = Field(default=50_000, ge=1)
    """Records per output Parquet shard (a shard is the unit of memory and of parallelism)."""
    shard_max_bytes: int = Field(default=256 * MiB, ge=1024)
    """Text bytes per output shard; whichever limit is hit first closes the shard."""
    max_record_bytes: int = Field(default=256 * MiB, ge=1024)
    """A larger record is quarantined as `record_too_large` instead of loaded."""
    unicode_normalization: Literal["NFC", "NFKC", "none"] = "NFC"
    """NFC keeps code and CJK text as written; NFKC also folds compatibility forms
    (full-width letters, ligatures), which changes code semantics."""
    fix_encoding: bool = True
    """Repair mojibake (UTF-8 decoded as Latin-1/CP1252 and similar) with ftfy."""
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    """Parquet compression of the output shards."""


class DataConfig(Section):
    shards: int = Field(default=2, ge=1, le=4096)
    """Parallel tasks for the sharded data stages (`quality`, `dedup_signatures`, `dedup`, `pii`, `compliance`,
    `decontaminate`): the
    DAG maps one task per shard; each takes every `shards`-th input shard."""
    ingest: IngestConfig = IngestConfig()
    """Unify every source into normalized Parquet shards."""
    quality: QualityConfig = QualityConfig()
    """Rule filters and an optional model scorer."""
    dedup: DedupConfig = DedupConfig()
    """Exact and near-duplicate removal."""
    pii: PiiConfig = PiiConfig()
    """PII scrubbing into typed placeholders."""
    compliance: ComplianceConfig = ComplianceConfig()
    """Block lists per category and an optional classifier for illegal, sexual or hateful content."""
    decontamination: DecontamConfig = DecontamConfig()
    """Remove documents sharing n-grams with the evaluation sets."""
    mix: MixConfig = MixConfig()
    """Domain/general ratio, per-source weights, curriculum order and in-context grouping."""
    pack: PackConfig = PackConfig()
    """Tokenize and pack into fixed-length sequences for training."""
