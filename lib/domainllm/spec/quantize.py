"""`quantize`: 8- and 4-bit variants of each promoted model, for vLLM (compressed-tensors,
made with llmcompressor) and for llama.cpp / ollama (GGUF), each registered and evaluated
against the full-precision model."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainllm.spec.base import Section

CompressedScheme = Literal["W8A8", "W4A16", "W8A16", "FP8_DYNAMIC"]
GgufType = Literal["f16", "q8_0", "q4_0", "q4_k_m"]


class QuantVariant(Section):
    name: str
    """Names the variant: its folder, its registered model (`<spec name>-<name>`) and its column
    in the comparison report."""
    format: Literal["compressed-tensors", "gguf"]
    """`compressed-tensors`: what vLLM serves (made with llmcompressor); `gguf`: llama.cpp / ollama."""
    scheme: CompressedScheme | None = None
    """compressed-tensors: `W8A8` (int8 weights and dynamic per-token int8 activations),
    `W4A16` / `W8A16` (int weights, 16-bit activations), `FP8_DYNAMIC`."""
    method: Literal["rtn", "gptq", "awq"] = "rtn"
    """compressed-tensors: `rtn` rounds to nearest (no data), `gptq` and `awq` calibrate on
    domain documents (`quantize.calibration`); llmcompressor's AWQ needs a GPU."""
    group_size: int | None = Field(default=128, ge=8)
    """Weight-only schemes: weights per scale; it must divide every quantized layer's input
    size (the 128-wide demo model uses 32). None: one scale per output channel."""
    type: GgufType | None = None
    """gguf: the tensor type; `q4_k_m` needs llama.cpp's quantizer (llama-cpp-python in the
    quantization environment); `q4_0` and `q8_0` are made without it."""

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", value):
            raise ValueError("must be lower-case letters, digits, '_' or '-' (e.g. 'w4a16')")
        return value

    @model_validator(mode="after")
    def _fits_format(self) -> QuantVariant:
        where = f"quantize.variants[{self.name}]"
        if self.format == "gguf":
            if self.type is None or self.scheme is not None:
                raise ValueError(f"{where}: a gguf variant takes `type` ({', '.join(GgufType.__args__)}), not `scheme`")
        else:
            if self.scheme is None or self.type is not None:
                raise ValueError(f"{where}: a compressed-tensors variant takes `scheme` "
                                 f"({', '.join(CompressedScheme.__args__)}), not `type`")  # fmt: skip
            if self.method == "awq" and self.scheme not in ("W4A16", "W8A16"):
                raise ValueError(f"{where}: AWQ makes weight-only schemes (W4A16, W8A16), not {self.scheme}")
            if self.scheme == "FP8_DYNAMIC" and self.method != "rtn":
                raise ValueError(f"{where}: FP8_DYNAMIC needs no calibration: use method rtn")
        return self

    @property
    def weight_bits(self) -> int:
        if self.format == "gguf":
            return {"f16": 16, "q8_0": 8, "q4_0": 4, "q4_k_m": 4}[self.type or "f16"]
        return 4 if self.scheme == "W4A16" else 8


class Calibration(Section):
    """Domain documents GPTQ and AWQ calibrate on (from the mix's training split)."""

    samples: int = Field(default=128, ge=1)
    seq_len: int = Field(default=512, ge=16)
    seed: int = 0


class GgufSettings(Section):
    pre_tokenizer: str | None = None
    """llama.cpp names the pre-tokenizers it knows by a hash of what they do to a test text;
    a tokenizer it does not know (a locally trained one) stops the conversion with
    "BPE pre-tokenizer was not recognized". Name the one it behaves as (e.g. `gpt-2` for a
    byte-level BPE with GPT-2's split pattern) to convert it anyway."""


def default_variants() -> tuple[QuantVariant, ...]:
    return (QuantVariant(name="w8a8", format="compressed-tensors", scheme="W8A8"),
            QuantVariant(name="w4a16", format="compressed-tensors", scheme="W4A16", method="gptq"),
            QuantVariant(name="gguf-q8_0", format="gguf", type="q8_0"),
            QuantVariant(name="gguf-q4_0", format="gguf", type="q4_0"))  # fmt: skip


class QuantizeConfig(Section):
    enabled: bool = True
    """Whether the `quantize` and `eval_quantized` stages run after a promotion."""
    variants: tuple[QuantVariant, ...] = Field(default_factory=default_variants)
    ignore: tuple[str, ...] = ("lm_head",)
    """compressed-tensors: layers kept at full precision (llmcompressor's `ignore`: names or `re:` patterns)."""
    calibration: Calibration = Calibration()
    gguf: GgufSettings = GgufSettings()
    serve_check: bool = True
    """Load each compressed-tensors variant in vLLM and answer one prompt (`eval_quantized`);
    where this machine's vLLM cannot run a scheme (W8A16 on CPUs) the check says so and is skipped."""
    suites: tuple[Literal["perplexity", "choice", "code"], ...] = ("perplexity", "choice", "code")
    """The eval suites `eval_quantized` runs on each variant and on the full-precision model,
    with their settings from `evals`."""

    @model_validator(mode="after")
    def _unique(self) -> QuantizeConfig:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"quantize.variants: duplicate names {dupes}")
        return self
