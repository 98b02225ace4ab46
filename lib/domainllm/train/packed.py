"""The pack stage's sequences as a training dataset: memory-mapped Arrow, read in order."""

from __future__ import annotations

import fsspec

from domainllm.data.docs import shard_paths
from domainllm.train.example_store import split_every


def packed_dataset(fs: fsspec.AbstractFileSystem, folder: str, eval_fraction: float):
    """(train, eval) datasets of `input_ids` and `position_ids`. Every k-th sequence is held
    out (k = 1 / eval_fraction), so both follow the curriculum and the split is stable."""
    from datasets import Dataset

    paths = shard_paths(fs, folder)
    if not paths:
        raise FileNotFoundError(f"no packed sequences in {folder}; run the pack stage first")
    return split_every(Dataset.from_parquet(paths, columns=["input_ids", "position_ids"]), eval_fraction)


class PackedCollator:
    """Stacks full-length packed sequences; labels are the inputs (the model shifts them).
    `position_ids` restart at each document: RoPE positions are per document, and with
    Flash Attention 2 transformers also keeps attention inside each document."""

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        ids = torch.tensor([r["input_ids"] for r in rows], dtype=torch.long)
        return {"input_ids": ids, "labels": ids.clone(),
                "position_ids": torch.tensor([r["position_ids"] for r in rows], dtype=torch.long)}  # fmt: skip


class PackedRowsCollator:
    """SFT batches of BFD-packed rows (TRL's `seq_lengths` per row) kept as rows: each row
    padded at the end, `position_ids` restarting at every example, no attention mask, so
    transformers builds a block-diagonal causal mask per row and no example sees another.

    TRL's own padding-free collator flattens the whole batch into one long sequence, which is
    what Flash Attention's varlen kernel wants; with SDPA or eager attention (CPU, GPUs
    without flash-attn) that makes attention quadratic in the batch's total length. Rows keep
    it quadratic in the row length only. The first token of each example is never a target
    (it is not predicted from the previous example), as in TRL. Padding sits at the row's end
    where causal attention never reaches it from real tokens; its labels are -100."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r.get("labels", r["input_ids"]))
            lengths = r.get("seq_lengths") or [n]
            positions[i, :n] = torch.cat([torch.arange(k) for k in lengths])
            positions[i, n:] = torch.arange(width - n)  # the padding: one more segment after the last example
        labels[positions == 0] = -100
        return {"input_ids": ids, "labels": labels, "position_ids": positions}
