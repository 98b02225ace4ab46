"""The pipeline spec: one YAML file, loaded into typed, validated config."""

from domainllm.spec.loader import SpecError, load_spec, parse_spec, spec_digest
from domainllm.spec.model import Spec

__all__ = ["Spec", "SpecError", "load_spec", "parse_spec", "spec_digest"]
