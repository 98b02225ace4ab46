"""Training throughput and MFU of our CPT recipe on one GPU against the plain HF baseline.

    .venv/bin/python bench/gpu_mfu.py                 # ~0.8B Llama, bf16, on the GPU
    .venv/bin/python bench/gpu_mfu.py --tiny --steps 4   # smoke run on CPU

Model: a Llama config of ~0.8B parameters (hidden 1536, 24 layers, 12 heads, MLP 4096, vocab
32k) with random weights (throughput does not depend on them) and random tokens.

- ours: `train_cpt` as the `cpt` stage runs it: packed full-length rows with per-document
  `position_ids` (Flash Attention 2's varlen path when installed, else SDPA), bf16,
  gradient checkpointing off (it fits), fused AdamW.
- baseline: HF Trainer on the same documents padded per batch (DataCollatorForLanguageModeling),
  eager attention, the same batch size.

Both rates count from the end of step 1 (compilation and allocator warm-up excluded) to the
end of the last step.

MFU = achieved model FLOPs / peak: 6 x params x tokens plus the attention term
12 x layers x hidden x seq_len per token (Megatron-LM's accounting, no recomputation counted),
over the GPU's dense bf16 peak (`--peak-tflops`; H100/H200 SXM: 989).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def model_dir(tmp: str, tiny: bool) -> tuple[str, dict]:
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, intermediate_size=128,
                 vocab_size=512) if tiny else dict(hidden_size=1536, num_hidden_layers=24, num_attention_heads=12,
                                                   num_key_value_heads=12, intermediate_size=4096, vocab_size=32000)  # fmt: skip
    cfg = LlamaConfig(max_position_embeddings=4096, tie_word_embeddings=False, **shape)
    LlamaForCausalLM(cfg).save_pretrained(tmp)
    vocab = {f"t{i}": i for i in range(cfg.vocab_size)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), eos_token="t1", pad_token="t0")
    tok.save_pretrained(tmp)
    return tmp, shape


def packed_rows(docs: list[list[int]], seq: int) -> list[dict]:
    """Documents back to back in rows of `seq` tokens, positions restarting where each
    document (or its continuation in the next row) starts: the pack stage's layout."""
    rows, ids, pos, p = [], [], [], 0
    for doc in docs:
        p = 0
        for t in doc:
            ids.append(t)
            pos.append(p)
            p += 1
            if len(ids) == seq:
                rows.append({"input_ids": ids, "position_ids": pos})
                ids, pos, p = [], [], 0
    return rows


def pad(batch: list[dict]) -> dict:
    """What DataCollatorForLanguageModeling does for the baseline: pad each batch to its
    longest row, labels -100 on the padding."""
    import torch

    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.tensor([b["input_ids"] + [0] * (width - len(b["input_ids"])) for b in batch])
    mask = torch.tensor([[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch])
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


class StepTimer:
    """Wall clock at the end of step 1 and of the last step (a TrainerCallback by duck typing)."""

    first = last = 0.0

    def __getattr__(self, name):  # every other callback event: nothing to do
        return lambda *args, **kwargs: None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            self.first = time.perf_counter()
        self.last = time.perf_counter()


def flops_per_token(params: int, shape: dict, seq_len: int) -> float:
    return 6 * params + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * seq_len


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--out", default="bench/.data/gpu_mfu.json")
    a = p.parse_args()

    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from domainllm.spec.training import CheckpointConfig, CptConfig
    from domainllm.train.cpt import train_cpt

    cuda = torch.cuda.is_available()
    seq = 64 if a.tiny else a.seq_len
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path, shape = model_dir(tmp + "/model", a.tiny)
        vocab = shape["vocab_size"]
        n_rows = a.steps * a.micro_batch + a.micro_batch
        # documents of 200-3000 tokens (scaled to seq_len), EOS-terminated
        docs: list[list[int]] = []
        while sum(len(d) for d in docs) < (n_rows + 1) * seq:
            docs.append(rng.integers(2, vocab, int(rng.integers(200, 3000) * seq / 2048) + 2).tolist() + [1])
        rows = packed_rows(docs, seq)[:n_rows]
        params = AutoModelForCausalLM.from_pretrained(path).num_parameters()
        recipe = CptConfig(max_steps=a.steps, micro_batch_size=a.micro_batch, gradient_checkpointing=False,
                           precision="bf16" if cuda else "fp32", eval_every_steps=10_000)  # fmt: skip
        t0 = time.perf_counter()
        res = train_cpt(recipe, CheckpointConfig(every_steps=10_000), base_model=path, train_ds=Dataset.from_list(rows),
                        eval_ds=None, seq_len=seq, ckpt_dir=tmp + "/ckpt", fingerprint="bench", out_dir=tmp + "/out")  # fmt: skip
        ours_s = time.perf_counter() - t0
        ours_tps = res.metrics["tokens_per_s"]

        windows = [d[i : i + seq] for d in docs for i in range(0, len(d), seq)][: n_rows * 2]
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager",
                                                     dtype=torch.bfloat16 if cuda else torch.float32)  # fmt: skip
        args = TrainingArguments(output_dir=tmp + "/base", max_steps=a.steps, per_device_train_batch_size=a.micro_batch,
                                 bf16=cuda, use_cpu=not cuda, report_to=[], save_strategy="no", logging_steps=10_000,
                                 disable_tqdm=True)  # fmt: skip

        timer = StepTimer()
        trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": windows}), data_collator=pad,
                          callbacks=[timer])  # fmt: skip
        t0 = time.perf_counter()
        trainer.train()
        base_s = time.perf_counter() - t0
        # as ours (the CurveRecorder): from the end of step 1 to the end of the last step
        real = sum(len(w) for w in windows[a.micro_batch : a.steps * a.micro_batch])
        base_tps = real / (timer.last - timer.first)
    fpt = flops_per_token(params, shape, seq)
    peak = a.peak_tflops * 1e12
    out = {"device": torch.cuda.get_device_name() if cuda else "cpu", "params": params, "seq_len": seq,
           "micro_batch": a.micro_batch, "steps": a.steps,
           "ours": {"tokens_per_s": ours_tps, "mfu": ours_tps * fpt / peak, "seconds": ours_s},
           "hf_baseline": {"tokens_per_s": base_tps, "mfu": base_tps * fpt / peak, "seconds": base_s}}  # fmt: skip
    print(json.dumps(out, indent=2))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
