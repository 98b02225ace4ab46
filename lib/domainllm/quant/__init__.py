"""Quantized exports of a promoted model: compressed-tensors variants for vLLM (made with
llmcompressor) and GGUF files for llama.cpp / ollama. The exporting runs in the quantization
environment (`make quant-env`; llmcompressor pins an older transformers), as
`python -m domainllm.quant.worker JOB.json`; the modules it imports use only the standard
library at import time, so that environment needs no more of domainllm than this package."""
