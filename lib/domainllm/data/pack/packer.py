"""Tokenize documents in order and pack them into fixed-length sequences.

Every document is followed by EOS; sequences are filled back to back, a long document
continues in the next sequence. `position_ids` restart at 0 where each document (or the
continued part of one) starts, which is how trainers with Flash Attention's variable-length
kernels (transformers' packed-sequence support) keep attention inside a document;
`doc_lens` lists the segment lengths for trainers that take cumulative lengths instead.
The unfilled tail of the last sequence is dropped and counted. Streaming: memory holds one
output shard and one tokenizer batch, whatever the corpus size.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pyarrow as pa

from domainllm.data.shards import ShardWriter
from domainllm.progress import Progress

log = logging.getLogger(__name__)

PACKED_SCHEMA = pa.schema(
    [
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("position_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("doc_lens", pa.list_(pa.int32()), nullable=False),
    ]
)


@dataclass
class PackResult:
    sequences: int = 0
    tokens_by_source: Counter[str] = field(default_factory=Counter)
    docs: int = 0
    docs_split: int = 0
    """Sequence boundaries that fall inside a document (the rest continues in the next sequence)."""
    tail_tokens_dropped: int = 0


def _segments(lengths: list[int]) -> list[int]:
    return [p for n in lengths for p in range(n)]


def pack(
    docs: Iterable[dict],
    tokenizer,
    seq_len: int,
    fs: fsspec.AbstractFileSystem,
    out_dir: str,
    *,
    batch_docs: int = 256,
    sequences_per_shard: int = 10_000,
) -> PackResult:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; packing needs one to separate documents")
    writer = ShardWriter(fs, out_dir, PACKED_SCHEMA, max_records=sequences_per_shard, max_bytes=1 << 62,
                         write_empty=True)  # fmt: skip
    result = PackResult()
    buf = np.empty(seq_len, dtype=np.int32)
    fill = 0
    lens: list[int] = []
    progress = Progress(log, "pack")

    def emit() -> None:
        nonlocal fill, lens
        writer.add({"input_ids": buf.tolist(), "position_ids": _segments(lens), "doc_lens": lens}, seq_len * 4)
        result.sequences += 1
        fill, lens = 0, []

    for batch in _batches(docs, batch_docs):
        ids = tokenizer([d["text"] for d in batch], add_special_tokens=False, verbose=False)["input_ids"]
        for doc, toks in zip(batch, ids, strict=True):
            toks = [*toks, eos]
            result.tokens_by_source[doc["source"]] += len(toks)
            result.docs += 1
            pos = 0
            while pos < len(toks):
                take = min(seq_len - fill, len(toks) - pos)
                buf[fill : fill + take] = toks[pos : pos + take]
                fill += take
                pos += take
                lens.append(take)
                if fill == seq_len:
                    if pos < len(toks):
                        result.docs_split += 1
                    emit()
        progress.update(docs=result.docs, sequences=result.sequences)
    result.tail_tokens_dropped = fill
    writer.close()
    progress.log(docs=result.docs, sequences=result.sequences)
    return result


def _batches(docs: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for d in docs:
        batch.append(d)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
