"""`data.pii`: PII scrubbing into typed placeholders."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from domainllm.spec.base import Location, Section

PII_ENTITIES = ("EMAIL", "PRIVATE_KEY", "API_KEY", "PASSWORD", "CREDIT_CARD", "CN_ID", "US_SSN", "PHONE",
                "IP_ADDRESS", "PERSON")  # fmt: skip
IP_SCOPES = ("loopback", "unspecified", "link_local", "multicast", "reserved", "documentation", "private")
"""Address ranges that `keep_ip_scopes` can leave in the text."""


class PiiConfig(Section):
    entities: tuple[str, ...] = PII_ENTITIES
    """What to find; each becomes `<ENTITY>` in the text."""
    names_en: bool = True
    """English person names (PERSON) with the NER component of the shipped spaCy model
    (en_core_web_sm, installed with the `data` extra), or of `ner_model`."""
    names_zh: bool = True
    """Chinese person names: where the text says a person stands, and jieba's tagger checked
    against Chinese surnames and name-like characters."""
    ner_model: Location | None = None
    """A local spaCy pipeline folder replacing the shipped English model, or a transformers
    token-classification folder (run through presidio's AnalyzerEngine: ~100x slower)."""
    ner_languages: tuple[str, ...] = ("en",)
    """Languages the NER model serves; documents in other languages use the first."""
    min_ner_score: float = Field(default=0.6, ge=0.0, le=1.0)
    keep_ip_scopes: tuple[str, ...] = IP_SCOPES[:-1]
    """IP address ranges left in the text: any of those and `private` (10.x, 192.168.x, fc00::/7).
    Public addresses are always replaced."""

    @field_validator("entities", "keep_ip_scopes")
    @classmethod
    def _known(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        what, allowed = ("entities", PII_ENTITIES) if info.field_name == "entities" else ("IP scopes", IP_SCOPES)
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown {what} {unknown}; allowed: {list(allowed)}")
        return value
