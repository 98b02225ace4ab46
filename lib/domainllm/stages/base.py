"""What a stage is: a named unit with a version, a config, inputs, and a `run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from domainllm.artifacts import Manifest, RunLayout, Staging
from domainllm.spec import Spec


@dataclass
class StageContext:
    spec: Spec
    run_id: str
    layout: RunLayout
    out: Staging
    """Where the stage writes; published atomically after `run` returns."""
    upstream: dict[str, Manifest]
    """Manifests of the stages this one requires."""
    fingerprint: str = ""
    """The stage's input+config fingerprint (e.g. to tell whether checkpoints are reusable)."""

    def upstream_dir(self, stage: str) -> str:
        return self.layout.stage_dir(stage)


@dataclass
class StageResult:
    counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    """Pointers for downstream stages, stored in the manifest (e.g. `model_path`)."""
    reports: list[str] = field(default_factory=list)
    """Output files (relative) to also log as MLflow artifacts (reports, plots)."""
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Metric name -> (step, value) series logged to MLflow (loss curves)."""
    tags: dict[str, str] = field(default_factory=dict)
    """MLflow tags for the stage run (e.g. a model's lineage)."""


class Stage(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]
    """Bump when the same inputs and config would now give different outputs."""
    requires: ClassVar[tuple[str, ...]]

    def required(self, spec: Spec) -> tuple[str, ...]:
        """Upstream stages this run of the stage reads (may depend on the spec)."""
        ...

    def config(self, spec: Spec) -> dict[str, Any]:
        """The settings that shape the output: fingerprinted and logged as params."""
        ...

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        """Fingerprints of inputs that are not stage outputs (source files, a model folder)."""
        ...

    def run(self, ctx: StageContext) -> StageResult: ...


class StageDefaults:
    """What most stages say for the optional parts of the protocol: they read `requires`
    whatever the spec, have no settings of their own and no inputs outside the run."""

    requires: ClassVar[tuple[str, ...]] = ()

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        return {}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        return {}
