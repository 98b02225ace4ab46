"""Training throughput with packing (our CPT and SFT stages) against plain HF training with
padding, on the same data and model, on CPU. Both sides see exactly the same real tokens; the
figure is real (non-pad) tokens per second of training.

    make demo   # builds the demo's base model, packed data and SFT examples
    .venv/bin/python bench/packing_throughput.py --run-id demo --docs 600 --examples 600

- CPT. Ours: the pack stage's layout (documents joined with EOS and cut into full rows of
  seq_len, restarting positions at each document; one long document spans rows). Baseline:
  HF Trainer + DataCollatorForLanguageModeling; every document split into windows of at most
  seq_len and each batch padded to its longest window (the usual recipe when examples are
  not packed). Documents are the first `--docs` of the mix, tokenized once for both.
- SFT. Ours: TRL SFTTrainer with BFD packing, batches of packed rows (`PackedRowsCollator`,
  what the sft stage uses with SDPA attention). Baseline: the same trainer with packing off
  (each batch padded). Same examples, one epoch each. `--flat` adds TRL's own padding-free
  collator (the whole batch flattened into one sequence, made for Flash Attention's varlen
  kernel).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _args(out: str, steps: int | None, batch: int, **extra):
    from transformers import TrainingArguments

    cls = extra.pop("cls", TrainingArguments)
    return cls(output_dir=out, per_device_train_batch_size=batch, max_steps=steps or -1, num_train_epochs=1,
               learning_rate=1e-3, use_cpu=True, bf16=False, report_to=[], save_strategy="no", logging_steps=10_000,
               disable_tqdm=True, seed=0, activation_checkpointing=False, **extra)  # fmt: skip


def cpt(model_dir: str, docs: list[str], seq_len: int, batch: int) -> dict[str, dict[str, float]]:
    import pyarrow.parquet as pq
    import torch
    from datasets import Dataset
    from fsspec.implementations.local import LocalFileSystem
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer

    from domainllm.data.pack.packer import pack
    from domainllm.train.packed import PackedCollator

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = [t + [tok.eos_token_id] for t in tok(docs, add_special_tokens=False)["input_ids"]]
    real = sum(len(t) for t in ids)
    with tempfile.TemporaryDirectory() as tmp:  # the pack stage's own code
        pack(({"text": d, "source": "s"} for d in docs), tok, seq_len, LocalFileSystem(), tmp)
        rows = [r for f in sorted(Path(tmp).glob("part-*.parquet")) for r in pq.read_table(f, columns=["input_ids", "position_ids"]).to_pylist()]
    packed_real = len(rows) * seq_len
    windows = [t[i : i + seq_len] for t in ids for i in range(0, len(t), seq_len)]
    results = {}
    for name, ds, collator, tokens in (
        ("packed (ours)", Dataset.from_list(rows), PackedCollator(), packed_real),
        ("padded (HF baseline)", Dataset.from_dict({"input_ids": windows}),
         DataCollatorForLanguageModeling(tok, mlm=False), real),
    ):  # fmt: skip
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(model=model, args=_args(tmp, None, batch), train_dataset=ds, data_collator=collator)
            t0 = time.perf_counter()
            trainer.train()
            elapsed = time.perf_counter() - t0
        results[name] = {"rows": len(ds), "steps": trainer.state.global_step, "real_tokens": tokens,
                         "seconds": elapsed, "tokens_per_s": tokens / elapsed}  # fmt: skip
        print(f"CPT {name}: {len(ds)} rows, {elapsed:.1f} s, {tokens / elapsed:,.0f} real tokens/s", flush=True)
    return results


def sft(model_dir: str, examples: list[list[dict]], seq_len: int, batch: int, flat: bool) -> dict[str, dict[str, float]]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from domainllm.train.packed import PackedRowsCollator

    tok = AutoTokenizer.from_pretrained(model_dir)
    lengths = [min(len(tok(tok.apply_chat_template(m, tokenize=False), add_special_tokens=False)["input_ids"]), seq_len) for m in examples]
    real = sum(lengths)
    results = {}
    variants = [("BFD packing, rows (ours)", True, True), ("padded (no packing)", False, False)]
    if flat:
        variants.append(("BFD packing, flattened (TRL padding-free)", True, False))
    for name, packing, as_rows in variants:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        with tempfile.TemporaryDirectory() as tmp:
            args = _args(tmp, None, batch, cls=SFTConfig, max_length=seq_len, packing=packing, assistant_only_loss=True)
            trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"messages": examples}),
                                 processing_class=tok)  # fmt: skip
            if as_rows:  # what the sft stage uses with SDPA
                trainer.data_collator = PackedRowsCollator(tok.pad_token_id)
            t0 = time.perf_counter()
            trainer.train()
            elapsed = time.perf_counter() - t0
        results[name] = {"rows": len(trainer.train_dataset), "steps": trainer.state.global_step, "real_tokens": real,
                         "seconds": elapsed, "tokens_per_s": real / elapsed}  # fmt: skip
        print(f"SFT {name}: {len(trainer.train_dataset)} rows, {elapsed:.1f} s, {real / elapsed:,.0f} real tokens/s", flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-id", default="demo")
    p.add_argument("--home", default=os.environ.get("DOMAINLLM_HOME", ".domainllm"))
    p.add_argument("--docs", type=int, default=600)
    p.add_argument("--examples", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--flat", action="store_true", help="also time TRL's flattened padding-free batches")
    p.add_argument("--out", default="bench/.data/packing_throughput.json")
    a = p.parse_args()

    import pyarrow.parquet as pq

    run = Path(a.home) / "artifacts" / a.run_id
    model_dir = json.loads((run / "base_model" / "_manifest.json").read_text())["info"]["model_path"]
    seq_len = json.loads((run / "pack" / "_manifest.json").read_text())["info"]["seq_len"]
    docs = [t for f in sorted((run / "mix").glob("part-*.parquet")) for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()]
    examples = pq.read_table(run / "sft_data" / "examples" / "part-00000.parquet").column("messages").to_pylist()
    import torch

    print(f"model {model_dir}, seq_len {seq_len}, torch threads {torch.get_num_threads()}", flush=True)
    results = {"cpt": cpt(model_dir, docs[: a.docs], seq_len, a.batch),
               "sft": sft(model_dir, examples[: a.examples], seq_len, a.batch, a.flat)}  # fmt: skip
    for kind, r in results.items():
        ours, base = list(r.values())[:2]
        print(f"{kind}: packing gain x{ours['tokens_per_s'] / base['tokens_per_s']:.2f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
