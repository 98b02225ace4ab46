"""Tokenize and pack documents into fixed-length training sequences."""

from domainllm.data.pack.packer import PACKED_SCHEMA, PackResult, pack

__all__ = ["PACKED_SCHEMA", "PackResult", "pack"]
