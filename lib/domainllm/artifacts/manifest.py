"""The stage manifest: written last, it is what makes a stage's output 'finished'."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "_manifest.json"


class OutputFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    """Relative to the stage folder."""
    sha256: str
    bytes: int
    records: int | None = None
    """Row count for Parquet files."""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str
    run_id: str
    status: str = "complete"
    fingerprint: str
    """Hash of the stage version, its config and its input fingerprints: equal means
    re-running would produce the same outputs."""
    inputs: dict[str, str]
    """Input name -> fingerprint (upstream stage manifests, source file listings)."""
    outputs: list[OutputFile]
    counts: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)
    """Stage-specific pointers for downstream stages (e.g. `model_path`)."""
    code_version: str
    spec_digest: str
    mlflow_run_id: str | None = None
    attempt_id: str | None = None
    started_at: str
    finished_at: str
    duration_s: float

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        return cls.model_validate_json(data)

    def summary(self) -> dict[str, Any]:
        """What operators hand to XCom: small, JSON-serializable."""
        return {
            "stage": self.stage,
            "run_id": self.run_id,
            "fingerprint": self.fingerprint,
            "counts": self.counts,
            "metrics": self.metrics,
            "info": self.info,
            "outputs": len(self.outputs),
            "mlflow_run_id": self.mlflow_run_id,
            "duration_s": self.duration_s,
        }
