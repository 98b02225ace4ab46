"""Mixing and ordering: domain/general ratio, per-source weights, curriculum, grouping."""

from domainllm.data.mix.mixer import MIX_SCHEMA, build_mix

__all__ = ["MIX_SCHEMA", "build_mix"]
