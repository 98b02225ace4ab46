"""`evals`: the evaluation suites, their fixed decoding parameters, and the promotion gate.

Decoding is fixed per suite and recorded with every result, so numbers stay comparable
between runs; `builtin:NAME` names a set shipped with the project (`builtin:perl-problems`,
`builtin:general-mc`, `builtin:humaneval`)."""

from __future__ import annotations

import itertools
import math
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from domainllm.spec.base import SENSITIVE, Section
from domainllm.spec.serving import RetrievalPolicy


class Decoding(Section):
    temperature: float = Field(default=0.0, ge=0)
    """0: greedy."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)
    """0: off."""
    max_new_tokens: int = Field(default=256, ge=1)
    repetition_penalty: float = Field(default=1.0, gt=0)
    n: int = Field(default=1, ge=1)
    """Samples per prompt (pass@k needs n >= k)."""
    stop: tuple[str, ...] = ()
    """Strings that end a completion (it is cut before them)."""
    seed: int = 0


class EvalSet(Section):
    name: str
    path: str
    """A JSONL/CSV file (a path or URI), or `builtin:NAME`."""


class PerplexitySuite(Section):
    enabled: bool = True
    max_tokens: int = Field(default=100_000, ge=1)
    """Per held-out set (the mix's domain and general held-out documents)."""


class CodeSuite(Section):
    enabled: bool = True
    sets: tuple[EvalSet, ...] = (EvalSet(name="perl", path="builtin:perl-problems"),)
    k: tuple[int, ...] = (1,)
    decoding: Decoding = Decoding(max_new_tokens=192, stop=("\nsub ", "\n__END__"))
    wall_s: float = Field(default=10.0, gt=0)
    memory_mb: int = Field(default=512, ge=16)
    allow_unisolated: bool = False
    """Run the completions' tests even where this machine cannot isolate them (no user
    namespaces): the stage then records them as unisolated. Off: the stage refuses, saying
    why and how to fix the machine."""

    @model_validator(mode="after")
    def _enough_samples(self) -> CodeSuite:
        if max(self.k, default=1) > self.decoding.n:
            raise ValueError(f"evals.code: pass@{max(self.k)} needs decoding.n >= {max(self.k)} (it is {self.decoding.n})")
        return self


class ChoiceSuite(Section):
    enabled: bool = True
    sets: tuple[EvalSet, ...] = (EvalSet(name="general", path="builtin:general-mc"),)
    scoring: Literal["letter", "text"] = "letter"


class JudgeSuite(Section):
    """Off unless `endpoint` is set: an OpenAI-compatible server (e.g. our own vLLM) whose model
    grades each answer 1-5 per rubric criterion."""

    endpoint: str | None = None
    """Base URL, ending in /v1."""
    model: str | None = None
    """The judge model's name on the endpoint; default: the first one it lists."""
    api_key_env: str | None = None
    """Name of the environment variable holding the key (never the key itself)."""
    prompts: EvalSet = EvalSet(name="domain", path="builtin:domain-questions")
    rubric: tuple[str, ...] = ("accuracy", "coherence", "readability", "safety")
    decoding: Decoding = Decoding(max_new_tokens=256)
    """How the evaluated models answer (one answer per prompt)."""
    structured: bool = True
    """Hold the judge to a JSON schema (`response_format`); off for servers without it."""

    @property
    def enabled(self) -> bool:
        return self.endpoint is not None

    @field_validator("endpoint")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL ending in /v1, e.g. http://vllm:8000/v1 (got {parts.scheme or 'no'} scheme)")
        if parts.username or parts.password or "key" in parts.query.lower():
            raise ValueError(f"{SENSITIVE}must not carry credentials: put the key in an environment variable and name it in api_key_env")
        return value

    @model_validator(mode="after")
    def _one_answer(self) -> JudgeSuite:
        if self.decoding.n != 1:
            raise ValueError("evals.judge.decoding.n must be 1: the judge grades one answer per prompt")
        if not self.rubric or len(set(self.rubric)) != len(self.rubric):
            raise ValueError("evals.judge.rubric must list distinct criteria")
        return self


class GateRuleConfig(Section):
    metric: str
    """A per-item score: `perplexity.<domain|general>.loss`, `code.<set>.pass_at_<k>`,
    `choice.<set>.correct`, `judge.<criterion>`."""
    higher_is_better: bool
    kind: Literal["improve", "no_regression"] = "no_regression"
    margin: float = Field(default=0.0, ge=0)
    relative: bool = False
    against: tuple[Literal["champion", "base"], ...] = ("champion", "base")


class GateConfig(Section):
    rules: tuple[GateRuleConfig, ...] = (
        GateRuleConfig(metric="perplexity.domain.loss", higher_is_better=False, kind="improve", margin=0.0),
        GateRuleConfig(metric="perplexity.general.loss", higher_is_better=False, kind="no_regression", margin=0.1,
                       relative=True),  # fmt: skip
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    bootstrap_samples: int = Field(default=2000, ge=100)


SEARCHABLE = ("temperature", "top_p", "top_k", "max_new_tokens", "repetition_penalty", "n")
MAX_COMBINATIONS = 64


class DecodingSearch(Section):
    """Optional stage `decoding_search`: tries every combination of `grid` on the candidate with
    one suite's sets and reports the best. It only reports: the suites keep their fixed decoding
    (copy the best into it to adopt it; comparisons with older runs then restart)."""

    enabled: bool = False
    suite: Literal["code", "judge"] = "code"
    grid: dict[str, tuple[float, ...]] = {"temperature": (0.2, 0.6, 1.0), "top_p": (0.95, 1.0)}
    """Decoding field -> values to try; the fields not listed keep the suite's decoding."""
    k: int = Field(default=1, ge=1)
    """code: the pass@k to maximise (every combination needs n >= k)."""

    @model_validator(mode="after")
    def _grid(self) -> DecodingSearch:
        unknown = sorted(set(self.grid) - set(SEARCHABLE))
        if unknown:
            raise ValueError(f"evals.decoding_search.grid: unknown field(s) {unknown}; searchable: {', '.join(SEARCHABLE)}")
        if any(not values for values in self.grid.values()):
            raise ValueError("evals.decoding_search.grid: every field needs at least one value")
        count = math.prod(len(v) for v in self.grid.values())
        if count > MAX_COMBINATIONS:
            raise ValueError(f"evals.decoding_search.grid has {count} combinations; at most {MAX_COMBINATIONS}: narrow it")
        return self

    def combinations(self, base: Decoding) -> list[Decoding]:
        """Every grid point applied to `base` (ValueError naming the point if one is invalid)."""
        keys = sorted(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            for key in ("top_k", "max_new_tokens", "n"):
                if key in point:
                    point[key] = int(point[key])
            try:
                out.append(Decoding.model_validate({**base.model_dump(), **point}))
            except ValueError as exc:
                raise ValueError(f"evals.decoding_search.grid point {point}: {exc}") from None
        return out


class QaSuite(Section):
    """Questions with reference answers, scored without a judge: the token F1 of each answer
    against its reference (SQuAD's measure: lower-cased words, punctuation dropped)."""

    enabled: bool = True
    sets: tuple[EvalSet, ...] = (EvalSet(name="domain", path="builtin:domain-questions"),)
    decoding: Decoding = Decoding(max_new_tokens=96)


class RetrievalEvals(Section):
    """The candidate answered twice by the generation suites named: as it is, and with the
    run's knowledge base in its prompts (role `candidate_rag`, with `policy`), so the report
    shows what retrieval adds. Needs the `kb_index` stage's knowledge base."""

    enabled: bool = False
    suites: tuple[Literal["qa", "code", "judge"], ...] = ("qa", "judge")
    policy: RetrievalPolicy = RetrievalPolicy(k=3)


class EvalConfig(Section):
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    """Generation backend: vLLM when installed (auto), else transformers; same results."""
    perplexity: PerplexitySuite = PerplexitySuite()
    code: CodeSuite = CodeSuite()
    choice: ChoiceSuite = ChoiceSuite()
    judge: JudgeSuite = JudgeSuite()
    qa: QaSuite = QaSuite()
    retrieval: RetrievalEvals = RetrievalEvals()
    decoding_search: DecodingSearch = DecodingSearch()
    gate: GateConfig = GateConfig()

    @model_validator(mode="after")
    def _search_points(self) -> EvalConfig:
        search = self.decoding_search
        if not search.enabled:
            return self
        suite = self.code if search.suite == "code" else self.judge
        for point in search.combinations(suite.decoding):
            if search.suite == "code" and point.n < search.k:
                raise ValueError(f"evals.decoding_search: pass@{search.k} needs n >= {search.k}; a grid point has n = {point.n}")
            if search.suite == "judge" and point.n != 1:
                raise ValueError("evals.decoding_search: the judge grades one answer per prompt; leave n out of the grid")
            if point.temperature == 0 and point.n > 1:
                raise ValueError(f"evals.decoding_search: a grid point has n = {point.n} with temperature 0 (greedy gives one answer)")
        if search.suite == "judge" and not self.judge.enabled:
            raise ValueError("evals.decoding_search.suite is judge, but evals.judge.endpoint is not set")
        return self
