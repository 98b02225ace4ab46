"""`data.dedup`: exact and MinHash-LSH near-duplicate removal."""

from __future__ import annotations

from pydantic import Field, model_validator

from domainllm.spec.base import Section


class DedupConfig(Section):
    exact: bool = True
    """Remove documents whose stripped text is identical to an earlier one (`exact_duplicate`)."""
    near: bool = True
    """Remove near-duplicates found by MinHash LSH (`near_duplicate`)."""
    threshold: float = Field(default=0.8, ge=0.5, le=1.0)
    """Jaccard similarity of word n-gram sets above which two documents are duplicates."""
    ngram: int = Field(default=3, ge=1, le=32)
    """Tokens per shingle (`domainllm.data.hashing.tokenize`: NFKC, lower-case, punctuation
    separates, a CJK character is a token).
    3, not the customary 5: one edited word removes n shingles, so with 5-grams a ~60-word
    document with one edit and a 5% truncation falls below 0.8 Jaccard. Measured on the
    labelled benchmark (docs/benchmarks.md): recall 0.92 -> 0.999 on ~400-character
    documents, no distinct document removed either way, same speed."""
    num_perm: int = Field(default=128, ge=16, le=1024)
    """MinHash permutations (signature length)."""
    seed: int = Field(default=1, ge=0)
    bands: int | None = Field(default=None, ge=1)
    rows: int | None = Field(default=None, ge=1)
    """LSH bands x rows per band. Null: derived from `threshold` and the weights below."""
    false_positive_weight: float = Field(default=0.05, ge=0.0, le=1.0)
    false_negative_weight: float = Field(default=0.95, ge=0.0, le=1.0)
    """How the bands x rows optimizer trades candidate pairs below the threshold (cheap to
    reject when `verify` is on) against duplicates missed (lost for good)."""
    verify: bool = True
    """Check every candidate pair's exact Jaccard similarity before joining a cluster.
    Reads the text of candidate documents only; turns LSH false positives into keeps."""

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both `bands` and `rows`, or neither (then they are derived from `threshold`)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self
