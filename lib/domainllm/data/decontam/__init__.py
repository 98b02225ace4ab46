"""Benchmark decontamination: n-gram overlap with every evaluation set the spec names."""

from domainllm.data.decontam.filter import Decontaminator

__all__ = ["Decontaminator"]
