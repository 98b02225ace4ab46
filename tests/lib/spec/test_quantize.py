"""`quantize` settings: each variant says what it is, impossible ones are refused at load time
with the variant named; what a variant needs (a GPU to export, a GPU for vLLM to serve it)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domainllm.quant.formats import served_by_vllm
from domainllm.spec.quantize import QuantizeConfig, QuantVariant


def test_defaults_cover_vllm_and_llama_cpp_at_8_and_4_bits() -> None:
    variants = QuantizeConfig().variants
    assert [(v.format, v.weight_bits) for v in variants] == [("compressed-tensors", 8), ("compressed-tensors", 4), ("gguf", 8), ("gguf", 4)]
    assert QuantizeConfig().enabled and QuantizeConfig().serve_check


@pytest.mark.parametrize(("variant", "why"), [
    ({"name": "a", "format": "gguf", "scheme": "W8A8"}, r"quantize.variants\[a\]: a gguf variant takes `type`"),
    ({"name": "b", "format": "compressed-tensors", "type": "q8_0"}, r"quantize.variants\[b\]: a compressed-tensors variant takes `scheme`"),
    ({"name": "c", "format": "compressed-tensors", "scheme": "W8A8", "method": "awq"}, "AWQ makes weight-only schemes"),
    ({"name": "d", "format": "compressed-tensors", "scheme": "FP8_DYNAMIC", "method": "gptq"}, "FP8_DYNAMIC needs no calibration"),
    ({"name": "Not A Slug", "format": "gguf", "type": "q8_0"}, "lower-case letters"),
    ({"name": "e", "format": "gguf", "type": "q3_k"}, "q3_k"),
])  # fmt: skip
def test_impossible_variants_are_refused(variant: dict, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        QuantVariant.model_validate(variant)


def test_variant_names_are_unique() -> None:
    v = {"name": "x", "format": "gguf", "type": "q8_0"}
    with pytest.raises(ValidationError, match=r"duplicate names \['x'\]"):
        QuantizeConfig.model_validate({"variants": [v, v]})


def test_vllm_serves_compressed_tensors_not_gguf() -> None:
    w4a16 = QuantVariant(name="c", format="compressed-tensors", scheme="W4A16", method="gptq").model_dump()
    q4 = QuantVariant(name="d", format="gguf", type="q4_0").model_dump()
    assert served_by_vllm(w4a16) and not served_by_vllm(q4)
