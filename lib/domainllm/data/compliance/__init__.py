"""Non-compliant content filtering: block lists per category and an optional classifier."""

from domainllm.data.compliance.filter import ComplianceFilter

__all__ = ["ComplianceFilter"]
