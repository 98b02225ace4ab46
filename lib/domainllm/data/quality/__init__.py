"""Quality filtering: rules for prose and for code, a bad-word list, an optional model."""

from domainllm.data.quality.filter import QualityFilter

__all__ = ["QualityFilter"]
