"""GGUF files for llama.cpp and ollama: llama.cpp's own HF -> GGUF converter writes f16 or
q8_0; 4-bit types are quantized from the f16 file, `q4_0` with the `gguf` package's quantizer
(block-wise, as llama.cpp's), `q4_k_m` with llama.cpp's quantizer (llama-cpp-python)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from domainllm.capabilities.crash import crash_in_log, describe_exit
from domainllm.quant.formats import Variant

log = logging.getLogger(__name__)

CONVERTER_ENV = "DOMAINLLM_GGUF_CONVERTER"
FILE_NAME = "model.gguf"
_CONVERTER_TYPES = ("f16", "q8_0")


class MissingTool(RuntimeError):
    """A tool this variant needs is not installed here (the variant is skipped, with the reason)."""


def converter() -> Path:
    """llama.cpp's convert_hf_to_gguf.py: `DOMAINLLM_GGUF_CONVERTER`, else where `make quant-env` puts it."""
    path = Path(os.environ.get(CONVERTER_ENV) or Path(sys.prefix) / "share" / "llama.cpp" / "convert_hf_to_gguf.py")
    if not path.is_file():
        raise MissingTool(f"llama.cpp's converter is not at {path}: run `make quant-env` (it takes convert_hf_to_gguf.py "
                          f"from the llama-cpp-python source release) or set {CONVERTER_ENV}")  # fmt: skip
    return path


def convert(model_path: str, dest: str, outtype: str, pre_tokenizer: str | None) -> None:
    """Runs the converter in a child process (it parses sys.argv and may exit)."""
    argv = [sys.executable, "-m", "domainllm.quant.convert", str(converter()), model_path,
            "--outfile", dest, "--outtype", outtype]  # fmt: skip
    env = {**os.environ, "DOMAINLLM_GGUF_PRE_TOKENIZER": pre_tokenizer or "", "PYTHONFAULTHANDLER": "1"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        output = done.stderr or done.stdout
        tail = "\n".join(output.strip().splitlines()[-8:])
        if "pre-tokenizer was not recognized" in tail:
            raise ValueError("llama.cpp does not know this tokenizer's pre-tokenizer: set quantize.gguf.pre_tokenizer "
                             "to the one it behaves as (e.g. gpt-2 for a byte-level BPE with GPT-2's split pattern)")  # fmt: skip
        crash = crash_in_log(output)
        raise RuntimeError(f"convert_hf_to_gguf.py {describe_exit(done.returncode)}{'; ' + crash.summary() if crash else ''}:\n{tail}")


def export(model_path: str, variant: Variant, out: str, *, pre_tokenizer: str | None) -> None:
    """Writes `<out>/model.gguf` of the variant's type and an ollama Modelfile beside it."""
    os.makedirs(out, exist_ok=True)
    dest, kind = os.path.join(out, FILE_NAME), variant["type"]
    if kind in _CONVERTER_TYPES:
        convert(model_path, dest, kind, pre_tokenizer)
    else:
        f16 = os.path.join(out, "f16.gguf.tmp")
        if kind == "q4_k_m":
            quantize_llama_cpp = _llama_cpp_quantizer()  # before converting: fail fast when missing
            convert(model_path, f16, "f16", pre_tokenizer)
            quantize_llama_cpp(f16, dest)
        else:
            convert(model_path, f16, "f16", pre_tokenizer)
            requantize(f16, dest, kind)
        os.remove(f16)
    with open(os.path.join(out, "Modelfile"), "w") as fh:  # `ollama create NAME -f Modelfile`
        fh.write(f"FROM ./{FILE_NAME}\n")


def _llama_cpp_quantizer():
    try:
        import llama_cpp
    except ImportError:
        raise MissingTool("q4_k_m needs llama.cpp's quantizer: install llama-cpp-python into the quantization "
                          "environment (a source build of a few minutes), or use type q4_0") from None  # fmt: skip

    def run(src: str, dst: str) -> None:
        import ctypes

        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0:
            raise RuntimeError(f"llama.cpp could not quantize {src} to q4_k_m")

    return run


# llama.cpp's `general.file_type` values (enum llama_ftype) for the types made here
_FILE_TYPES = {"q4_0": 2, "q8_0": 7}


def requantize(src: str, dst: str, kind: str) -> None:
    """Re-writes an f16/f32 GGUF with its 2-D weights quantized to `kind` (rows whose length is
    not a multiple of the block size, and norms, stay as they are). Metadata is copied."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGUFReader, GGUFValueType, GGUFWriter, quants
    from gguf import GGMLQuantizationType as Q

    target = Q[kind.upper()]
    block = GGML_QUANT_SIZES[target][0]
    reader = GGUFReader(src)
    writer = GGUFWriter(dst, arch=reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            writer.add_uint32(name, _FILE_TYPES[kind])
        elif field.types[0] == GGUFValueType.ARRAY:
            writer.add_key_value(name, field.contents(), field.types[0], sub_type=field.types[-1])
        else:
            writer.add_key_value(name, field.contents(), field.types[0])
    for tensor in reader.tensors:
        data = np.asarray(tensor.data)
        weight = data.ndim == 2 and data.shape[-1] % block == 0 and not tensor.name.endswith("norm.weight")
        if tensor.tensor_type in (Q.F32, Q.F16) and weight:
            writer.add_tensor(tensor.name, quants.quantize(data.astype(np.float32), target), raw_dtype=target)
        else:
            writer.add_tensor(tensor.name, data, raw_dtype=None if data.dtype == np.float32 else tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
