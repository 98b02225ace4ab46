"""The whole pipeline spec: one YAML file describes one build."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from domainllm.spec.base import Location, Section
from domainllm.spec.base_model import BaseModelConfig
from domainllm.spec.data import DataConfig
from domainllm.spec.evals import EvalConfig
from domainllm.spec.flywheel import FlywheelConfig
from domainllm.spec.knowledge import KnowledgeConfig
from domainllm.spec.quantize import QuantizeConfig
from domainllm.spec.runtime import RuntimeConfig
from domainllm.spec.serving import ServingConfig
from domainllm.spec.sources import Source
from domainllm.spec.tracking import TrackingConfig
from domainllm.spec.training import TrainingConfig


class Spec(Section):
    name: str
    """Pipeline name: the MLflow experiment and registered-model name."""
    artifact_root: Location
    """Where runs write their outputs: a local folder or an object-store URI.
    Each run gets `<artifact_root>/<run_id>/<stage>/`."""
    sources: tuple[Source, ...] = Field(min_length=1)
    """Raw inputs: at least one domain source."""
    data: DataConfig = DataConfig()
    base_model: BaseModelConfig
    training: TrainingConfig = TrainingConfig()
    """CPT -> SFT -> DPO: recipes, optimizer, LoRA, DeepSpeed, checkpoints."""
    evals: EvalConfig = EvalConfig()
    """Evaluation suites with fixed decoding, and the promotion gate."""
    knowledge: KnowledgeConfig = KnowledgeConfig()
    """The domain knowledge base (chunks + embeddings in a vector store) for retrieval-augmented answers."""
    quantize: QuantizeConfig = QuantizeConfig()
    """8- and 4-bit variants of each promoted model (vLLM and GGUF), registered and evaluated."""
    serving: ServingConfig = ServingConfig()
    """How vLLM serves a model version."""
    flywheel: FlywheelConfig = FlywheelConfig()
    """The nightly data flywheel: serving logs -> preference pairs -> the next DPO round."""
    tracking: TrackingConfig = TrackingConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", value):
            raise ValueError("must be letters, digits, '.', '_' or '-' (e.g. 'perl-assistant')")
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> Spec:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: duplicate names {dupes}; every source needs its own name")
        if not any(s.domain == "domain" for s in self.sources):
            raise ValueError("sources: at least one source must have `domain: domain`")
        for step in ("quality", "compliance", "decontamination"):
            unknown = sorted(set(getattr(self.data, step).skip_sources) - set(names))
            if unknown:
                raise ValueError(f"data.{step}.skip_sources: unknown source(s) {unknown}; defined sources: {names}")
        unknown = sorted(set(self.knowledge.sources) - set(names))
        if unknown:
            raise ValueError(f"knowledge.sources: unknown source(s) {unknown}; defined sources: {names}")
        policies = {"serving.retrieval": self.serving.retrieval,
                    **{f"serving.intents.routes[{r.name}].retrieval": r.retrieval for r in self.serving.intents.routes}}  # fmt: skip
        for where, policy in policies.items():
            unknown = sorted(set(policy.sources) - set(names))
            if unknown:
                raise ValueError(f"{where}.sources: unknown source(s) {unknown}; defined sources: {names}")
        unknown = sorted(set(self.data.mix.source_weights) - set(names))
        if unknown:
            raise ValueError(f"data.mix.source_weights: unknown source(s) {unknown}; defined sources: {names}")
        demo = self.base_model.demo
        if demo is not None:
            for field in ("corpus_sources", "tokenizer_sources"):
                unknown = sorted(set(getattr(demo, field)) - set(names))
                if unknown:
                    raise ValueError(
                        f"base_model.demo.{field}: unknown source(s) {unknown}; defined sources: {names}"
                    )
        return self

    def source(self, name: str) -> Source:
        for src in self.sources:
            if src.name == name:
                return src
        raise KeyError(name)
