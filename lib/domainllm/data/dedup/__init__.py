"""Exact and MinHash-LSH near-duplicate removal, in stages that scale out:
signatures (sharded) -> band buckets -> candidate pairs -> components -> filter (sharded)."""

from domainllm.data.dedup.clusters import find_duplicates
from domainllm.data.dedup.filter import DuplicateFilter
from domainllm.data.dedup.signatures import write_signatures

__all__ = ["DuplicateFilter", "find_duplicates", "write_signatures"]
