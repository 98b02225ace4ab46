"""`flywheel`: the nightly data flywheel. What users asked through the gateway becomes new
preference pairs (prompt, chosen, rejected) in a versioned dataset that the next DPO round
trains on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from domainllm.spec.base import Location, Section
from domainllm.spec.evals import Decoding, JudgeSuite


class HarvestConfig(Section):
    """What one caller can put into a night's training data, and what looks like an attempt
    to steer the model. Feedback only counts from the key that received the answer, once (the
    gateway signs answer ids); these caps and flags hold per principal (the key's pseudonymous id)."""

    max_requests_per_principal_per_day: int = Field(default=200, ge=1)
    """Answered requests harvested per principal and UTC day; the rest are counted (`capped.requests`)."""
    max_feedback_per_principal_per_day: int = Field(default=50, ge=0)
    """Feedback (ratings and better answers) kept per principal and UTC day; beyond it the
    request is harvested without its feedback (`capped.feedback`)."""
    dominant_share: float = Field(default=0.5, gt=0, le=1)
    """A principal whose feedback is more than this share of the window's is flagged..."""
    dominant_min_feedback: int = Field(default=20, ge=1)
    """...once the window holds at least this much feedback."""
    burst_feedback: int = Field(default=20, ge=2)
    """Feedback from one principal within `burst_window_s` that gets it flagged."""
    burst_window_s: float = Field(default=60, gt=0)
    near_duplicate_prompts: int = Field(default=10, ge=2)
    """Prompts of one principal that nearly repeat each other (MinHash Jaccard >= 0.8) that get it flagged."""
    on_anomaly: Literal["flag", "exclude"] = "flag"
    """`flag`: a flagged principal's data goes on, judged like all data, and the flags are in
    the harvest's manifest, the report and the rollout approval; `exclude`: its feedback is
    left out too (its prompts stay, their candidates judged)."""


class CurateConfig(Section):
    """What must not be trained on is dropped (quarantined with the reason, counted)."""

    min_chars: int = Field(default=8, ge=1)
    """Shorter prompts are too low in content to learn from."""
    max_chars: int = Field(default=8000, ge=1)
    min_alpha_ratio: float = Field(default=0.3, ge=0, le=1)
    """Share of letters a prompt needs (drops key mashing, pasted binary, bare numbers)."""
    near_duplicate_threshold: float = Field(default=0.85, gt=0, le=1)
    """MinHash Jaccard similarity above which a prompt repeats an earlier one (in the period
    or in the preference dataset)."""
    scrub_pii: bool = True
    """Scrub PII again with the data pipeline's scrubber (the gateway may log unscrubbed)."""
    decontaminate: bool = True
    """Drop prompts that match an evaluation item: the spec's eval suites' sets and
    `data.decontamination.eval_sets` (n-gram overlap, or the whole normalized prompt)."""


class ModelRef(Section):
    """One model to sample answers from: exactly one of `alias` (a version in the model
    registry, e.g. `production`, `previous-production`, `champion`), `stage` (a model stage of
    the production version's training run, e.g. `sft`), or `endpoint` (any OpenAI-compatible
    server; `model` names the model there)."""

    alias: str | None = None
    stage: Literal["base_model", "cpt", "sft", "dpo"] | None = None
    endpoint: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    """Name of the environment variable holding the endpoint's key (never the key itself)."""

    @model_validator(mode="after")
    def _one_kind(self) -> ModelRef:
        given = [k for k in ("alias", "stage", "endpoint") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of alias, stage or endpoint (got {given or 'none'})")
        if self.endpoint:
            JudgeSuite(endpoint=self.endpoint)  # the same URL rules: http(s), no credentials in it
        return self

    @property
    def label(self) -> str:
        return f"alias:{self.alias}" if self.alias else f"stage:{self.stage}" if self.stage else f"endpoint:{self.model or self.endpoint}"


class SamplingConfig(Section):
    models: tuple[ModelRef, ...] = (ModelRef(alias="production"), ModelRef(stage="sft"))
    """Each answers every prompt `samples_per_model` times; versions not registered (yet) are
    skipped with a note."""
    samples_per_model: int = Field(default=2, ge=1, le=16)
    decoding: Decoding = Decoding(temperature=0.8, top_p=0.95, max_new_tokens=256)
    include_served: bool = True
    """The answer the user got is a candidate too (it is what feedback is about)."""
    max_prompts: int = Field(default=2000, ge=1)
    """Per night; prompts with feedback go first, the rest beyond it are left out (counted
    as `deferred`)."""


class LabelConfig(Section):
    """Which candidate is better: user feedback first; otherwise the judge (`evals.judge`, when
    configured) or rule checks (empty, cut off at the token limit, repetition loops, code that
    does not compile)."""

    use_judge: bool = True
    """Grade with `evals.judge` when it is configured."""
    judge: JudgeSuite | None = None
    """A judge for the flywheel only; default: `evals.judge`."""
    min_margin: float = Field(default=0.25, gt=0, le=1)
    """Score difference (0-1 scale) chosen - rejected a pair needs."""
    max_pairs_per_prompt: int = Field(default=1, ge=1, le=8)
    allow_unisolated: bool = False
    """Compile-check code blocks of answers (`perl -c` runs BEGIN blocks) even where this
    machine cannot isolate them; off: the stage refuses instead (the answers are strangers' text)."""


class FlywheelConfig(Section):
    enabled: bool = True
    dataset: Location | None = None
    """The versioned preference dataset; default `<artifact_root>/preferences`."""
    harvest: HarvestConfig = HarvestConfig()
    curate: CurateConfig = CurateConfig()
    sampling: SamplingConfig = SamplingConfig()
    label: LabelConfig = LabelConfig()
    min_new_pairs: int = Field(default=200, ge=1)
    """New pairs (since the last training round) that trigger the next one: DPO -> evals ->
    gate -> rollout."""
