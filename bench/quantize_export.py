"""Quantized exports: how long each variant takes, how big it is, and how far its perplexity
moves, with the same worker the `quantize` stage runs.

The model is `--model` (a transformers folder), or a randomly initialised Llama of
`--hidden/--layers` built on the spot. The tokenizer is `--tokenizer`; this measures export time
and size, which do not depend on what the weights mean. Calibration and scoring texts are
`--texts` (JSONL of {"text"}).
- The worker runs in the quantization environment: `DOMAINLLM_QUANT_PYTHON`, or this Python
  when llmcompressor is installed here (the GPU machine).
- Every exported variant is then loaded back with transformers, on the GPU when there is one,
  and its perplexity is measured on the texts.

    DOMAINLLM_QUANT_PYTHON=.venv-quant/bin/python .venv/bin/python bench/quantize_export.py \\
        --tokenizer MODEL_DIR --texts calib.jsonl --hidden 2048 --layers 22 --out /tmp/qbench
"""

from __future__ import annotations

import argparse
import json
import os
import time

VARIANTS = {
    "w8a8": {"format": "compressed-tensors", "scheme": "W8A8", "method": "rtn", "group_size": None},
    "w8a16": {"format": "compressed-tensors", "scheme": "W8A16", "method": "rtn", "group_size": 128},
    "fp8": {"format": "compressed-tensors", "scheme": "FP8_DYNAMIC", "method": "rtn", "group_size": None},
    "w4a16-gptq": {"format": "compressed-tensors", "scheme": "W4A16", "method": "gptq", "group_size": 128},
    "w4a16-awq": {"format": "compressed-tensors", "scheme": "W4A16", "method": "awq", "group_size": 128},
    "gguf-q8_0": {"format": "gguf", "type": "q8_0"},
    "gguf-q4_0": {"format": "gguf", "type": "q4_0"},
}


def random_llama(tokenizer_dir: str, out: str, hidden: int, layers: int) -> str:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=int(hidden * 2.75) // 64 * 64,
                      num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 512),
                      max_position_embeddings=2048, tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def perplexity(model_dir: str, reference: str, texts: list[str]) -> float:
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domainllm.quant.load import evaluable

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(reference)
    with evaluable(model_dir, reference) as path:
        model = AutoModelForCausalLM.from_pretrained(path, dtype="auto").to(device).eval()
        nll = n = 0.0
        with torch.no_grad():
            for text in texts:
                ids = tok(text, return_tensors="pt", truncation=True, max_length=256).input_ids.to(device)
                if ids.shape[1] > 1:
                    nll += float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
                    n += ids.shape[1] - 1
    return math.exp(nll / n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a transformers model folder; default: a random Llama (--hidden, --layers)")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--texts", required=True, help="JSONL of {text}: calibration and scoring")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--pre-tokenizer", default="gpt-2")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from domainllm.quant.runner import run_worker

    os.makedirs(args.out, exist_ok=True)
    t = time.perf_counter()
    model = args.model or random_llama(args.tokenizer, os.path.join(args.out, "model"), args.hidden, args.layers)
    built_s = time.perf_counter() - t
    with open(args.texts) as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]
    variants = [{"name": n, **{**VARIANTS[n], **({"group_size": args.group_size} if VARIANTS[n].get("group_size") else {})}}
                for n in args.variants]  # fmt: skip
    job = {"model": model, "out": os.path.join(args.out, "variants"), "variants": variants, "ignore": ["lm_head"],
           "calibration": args.texts, "seq_len": 512, "pre_tokenizer": args.pre_tokenizer}  # fmt: skip
    results = run_worker(job, os.path.join(args.out, "job.json"))
    full_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(model) for f in fs)
    rows = [{"variant": "full", "seconds": round(built_s, 1), "mb": round(full_bytes / 2**20, 1),
             "ppl": round(perplexity(model, model, texts), 4)}]  # fmt: skip
    for r in results["variants"]:
        row = {"variant": r["name"], "status": r["status"], "seconds": r["seconds"]}
        if r["status"] == "ok":
            row["mb"] = round(r["bytes"] / 2**20, 1)
            row["ppl"] = round(perplexity(os.path.join(job["out"], r["name"]), model, texts), 4)
        else:
            row["reason"] = r.get("reason")
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"environment": results["environment"], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
