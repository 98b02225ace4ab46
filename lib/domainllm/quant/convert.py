"""`python -m domainllm.quant.convert CONVERTER MODEL ARGS...`: runs llama.cpp's
convert_hf_to_gguf.py as its own `__main__`. With `DOMAINLLM_GGUF_PRE_TOKENIZER` set, a
tokenizer whose pre-tokenizer llama.cpp does not recognise is converted as that one
(`quantize.gguf.pre_tokenizer`); recognised tokenizers are left to the converter."""

from __future__ import annotations

import os
import runpy
import sys


def _patch(pre_tokenizer: str) -> None:
    from conversion.base import TextModel

    recognise = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return recognise(self, tokenizer)
        except NotImplementedError:
            print(f"pre-tokenizer not recognised by llama.cpp: converting as {pre_tokenizer!r} "
                  f"(quantize.gguf.pre_tokenizer)", file=sys.stderr)  # fmt: skip
            return pre_tokenizer

    TextModel.get_vocab_base_pre = get_vocab_base_pre


def main() -> None:
    script = sys.argv[1]
    here = os.path.dirname(os.path.abspath(script))
    sys.path[:0] = [here, os.path.join(here, "gguf-py")]  # the gguf-py the converter is written against
    if os.environ.get("DOMAINLLM_GGUF_PRE_TOKENIZER"):
        _patch(os.environ["DOMAINLLM_GGUF_PRE_TOKENIZER"])
    sys.argv = [script, *sys.argv[2:]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
