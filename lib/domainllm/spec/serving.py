"""`serving`: how vLLM serves a model version (locally from the serving environment, on
Kubernetes as a Deployment with the same settings)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainllm.spec.base import Section


class LoraServing(Section):
    enabled: bool = False
    """Serve a base model plus LoRA adapters (`--enable-lora`) instead of a merged model."""
    max_loras: int = Field(default=4, ge=1)
    """Adapters in one batch."""
    max_lora_rank: int = Field(default=64, ge=1)


class RolloutConfig(Section):
    """How a new version reaches users: the canary's share of traffic rises step by step, and
    at each step the canary is compared with the stable version on the gateway's metrics."""

    steps: tuple[float, ...] = (10.0, 50.0, 100.0)
    """Canary traffic in percent, rising, ending at 100."""
    min_requests: int = Field(default=50, ge=1)
    """Canary requests a step needs before it is judged."""
    step_timeout_s: float = Field(default=900, gt=0)
    """A step that has not seen `min_requests` by then fails (and the canary rolls back)."""
    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    """Canary 5xx share allowed, absolute..."""
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    """...and above the stable version's over the same step."""
    max_latency_ratio: float = Field(default=1.5, gt=0)
    """Canary mean latency allowed, as a multiple of the stable version's."""
    max_p95_latency_ratio: float = Field(default=2.0, gt=0)
    """Canary p95 latency allowed, as a multiple of the stable version's (compared once both
    served `min_requests` in the step; the gateway's histogram, interpolated in its bucket)."""
    min_votes: int = Field(default=20, ge=1)
    """User votes (up or down) each version needs in a step before their down-rates are
    compared; with fewer the step says so and the check does not block."""
    vote_wait_s: float = Field(default=600, ge=0)
    """How long a step whose metrics are in waits for the votes (and judge scores) of both
    versions, within `step_timeout_s`; 0: judge on what has come in."""
    max_down_rate_increase: float = Field(default=0.10, ge=0, le=1)
    """Canary share of down-votes allowed above the stable version's over the same step."""
    max_votes_per_principal: int = Field(default=5, ge=1)
    """Votes one user counts with per version and step: no single key can sink or carry a
    canary (votes are read from the request log, first vote of the answer's receiver only)."""
    judge_sample: int = Field(default=0, ge=0)
    """Live answers per version the judge (`evals.judge`) scores at each step; 0: no judge."""
    judge_min_scored: int = Field(default=8, ge=1)
    """Scored answers each version needs before their means are compared."""
    judge_max_drop: float = Field(default=0.05, ge=0, le=1)
    """How far the canary's mean judge score (0-1) may fall below the stable version's."""
    routes_timeout_s: float = Field(default=180, gt=0)
    """How long every gateway replica may take to use new route weights (on Kubernetes the
    ConfigMap reaches the pods' files within about a minute) before the step fails."""
    probe_requests: int = Field(default=0, ge=0)
    """Synthetic requests the rollout sends through the gateway at each step (demo and tests;
    0 in production, where users are the traffic). They are marked synthetic in the request
    log, so the data flywheel never trains on them."""
    probe_prompts: str = "builtin:domain-questions"
    """JSONL with a `prompt` per line that the probes ask (the judge's prompt format)."""
    probe_max_tokens: int = Field(default=32, ge=1)

    @model_validator(mode="after")
    def _steps(self) -> RolloutConfig:
        if not self.steps or list(self.steps) != sorted(set(self.steps)) or self.steps[0] <= 0 or self.steps[-1] != 100:
            raise ValueError(f"serving.rollout.steps must rise from above 0 to 100 (got {list(self.steps)})")
        return self


DEFAULT_TEMPLATE = ("Answer with the help of these excerpts from the knowledge base. Cite them by number, like [1], "
                    "where you use them; say so when they do not answer the question.\n\n{context}")  # fmt: skip


class RetrievalPolicy(Section):
    """Retrieval-augmented answers: the top-k chunks of the knowledge base for the user's last
    message, put into the request as context (a system message from `template`) or as
    few-shot examples; the answer comes back with its citations. A request can turn it on or
    off (`"retrieval": true|false` or `{"k": 2}` in its body)."""

    enabled: bool = True
    """Whether requests of this route are augmented unless they say otherwise."""
    k: int = Field(default=4, ge=1, le=32)
    sources: tuple[str, ...] = ()
    """Knowledge sources to search (`knowledge.sources`); empty: all of them."""
    mode: Literal["context", "few_shot"] = "context"
    """`context`: the chunks in a system message; `few_shot`: each chunk as an example exchange
    (its title asked, its text answered) before the user's messages."""
    template: str = DEFAULT_TEMPLATE
    """The system message in `context` mode; `{context}` becomes the numbered chunks."""
    min_score: float = Field(default=0.0, ge=-1, le=1)
    """Chunks less similar than this (cosine) to the question are left out."""
    max_chars: int = Field(default=6000, ge=100)
    """Context budget: chunks are added best first until it is spent."""

    @field_validator("template")
    @classmethod
    def _has_context(cls, value: str) -> str:
        if "{context}" not in value:
            raise ValueError("a retrieval template needs a {context} placeholder for the chunks")
        return value


class IntentRoute(Section):
    name: str
    """The route's name: what the classifier predicts, and the label in metrics and logs."""
    examples: tuple[str, ...] = ()
    """Labelled prompts of this route (more can come from `serving.intents.examples`)."""
    retrieval: RetrievalPolicy = RetrievalPolicy()
    system: str | None = None
    """A system message for this route's requests (before any retrieval context)."""

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", value):
            raise ValueError("must be lower-case letters, digits, '_' or '-' (e.g. 'code_help')")
        return value


class IntentConfig(Section):
    """Intent routing: a classifier (logistic regression over the knowledge base's embeddings,
    trained by the `intents` stage) maps each request to a route, which says whether and
    where to retrieve and which system message to use."""

    routes: tuple[IntentRoute, ...] = ()
    examples: str | None = None
    """JSONL of {"text", "intent"}: labelled prompts beside the routes' own."""
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    """Below this probability the request takes the `fallback` route."""
    fallback: str | None = None
    """The route for unsure predictions; default: `serving.retrieval` (the route `default`)."""
    regularization: float = Field(default=4.0, gt=0)
    """Inverse regularization strength (scikit-learn's C)."""

    @model_validator(mode="after")
    def _routes(self) -> IntentConfig:
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"serving.intents.routes: duplicate names {sorted({n for n in names if names.count(n) > 1})}")
        if "default" in names:
            raise ValueError("serving.intents.routes: `default` is the name of serving.retrieval's route; pick another")
        if self.fallback is not None and self.fallback not in names:
            raise ValueError(f"serving.intents.fallback: {self.fallback!r} is not a route ({names})")
        if self.routes and len(self.routes) < 2:
            raise ValueError("serving.intents.routes: a classifier needs at least two routes")
        return self


class GatewayLimits(Section):
    """What one API key may use (a key's own `limits` in the keys file override these)."""

    requests_per_minute: int = Field(default=120, ge=1)
    """Requests (and feedback) per minute; a burst may spend a whole minute's worth at once."""
    concurrency: int = Field(default=8, ge=1)
    """Requests in flight at once; more are answered 429 at once, not queued."""
    requests_per_day: int = Field(default=20_000, ge=1)
    tokens_per_day: int = Field(default=4_000_000, ge=1)
    """Prompt and completion tokens a day (UTC). A request reserves `n x max_tokens` plus its
    prompt's size up front; the reservation becomes the real usage when the backend reports it."""
    feedback_per_day: int = Field(default=500, ge=0)


class GatewayPolicy(Section):
    """The gateway's rules for every caller: an API key is required, request fields are
    allowlisted and capped, and each key has its own limits. Ids of answers are issued and
    signed by the gateway; only the key that received an answer can rate it, once."""

    admin_port: int = Field(default=8801, ge=1, le=65535)
    """`/metrics` and the detailed `/health` listen here, apart from user traffic (locally on
    127.0.0.1; on Kubernetes only the platform's pods may reach it)."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """A larger request is answered 413."""
    max_n: int = Field(default=4, ge=1, le=64)
    max_tokens: int = Field(default=2048, ge=1)
    """The most tokens a request may ask for per choice; also what it gets when it names none."""
    max_stop: int = Field(default=4, ge=0, le=16)
    max_stop_chars: int = Field(default=128, ge=1)
    max_messages: int = Field(default=256, ge=1)
    max_feedback_chars: int = Field(default=16_000, ge=1)
    """The longest `preferred` answer (and `comment`) feedback may carry."""
    request_timeout_s: float = Field(default=300, gt=0, le=3600)
    """A backend answer that takes longer is cut off (502)."""
    feedback_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    """How long after an answer its receiver may still rate it."""
    limits: GatewayLimits = GatewayLimits()


class ServingConfig(Section):
    enabled: bool = True
    """Whether the `rollout` stage serves promoted versions (off: the pipeline ends at the gate)."""
    max_model_len: int | None = Field(default=None, ge=16)
    """Context length served; default: the model's."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """GPUs: the share of memory vLLM takes for weights and KV cache."""
    kv_cache_gib: int = Field(default=1, ge=1)
    """vLLM's CPU build: KV-cache size in GiB (`VLLM_CPU_KVCACHE_SPACE`)."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """GPUs per replica."""
    max_num_seqs: int | None = Field(default=None, ge=1)
    """Concurrent sequences per replica; default: vLLM's."""
    lora: LoraServing = LoraServing()
    enforce_eager: bool = False
    """Skip torch.compile and graph capture (`--enforce-eager`): a server starts in less than
    half the time (the demo's model on 2 CPU cores: 32 s instead of 80 s) and generates more
    slowly. For tiny models, demos and tests; LoRA serving is eager on CPUs anyway."""
    extra_args: tuple[str, ...] = ()
    """Further `vllm serve` arguments, passed as they are."""
    start_timeout_s: float = Field(default=600, gt=0)
    """How long a server may take to answer /health."""
    gateway_port: int = Field(default=8800, ge=1, le=65535)
    """Where the local gateway listens (on Kubernetes: its Service's port)."""
    gateway: GatewayPolicy = GatewayPolicy()
    log_root: str | None = None
    """Where the gateway logs requests and feedback; default `<artifact_root>/serving-logs`."""
    scrub_pii: bool = True
    """Scrub PII from prompts, answers and feedback before they are logged."""
    rollout: RolloutConfig = RolloutConfig()
    retrieval: RetrievalPolicy = RetrievalPolicy()
    """The gateway's retrieval for requests no intent route claims (the route `default`)."""
    intents: IntentConfig = IntentConfig()
