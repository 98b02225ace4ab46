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
