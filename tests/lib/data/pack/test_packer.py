"""Packing: fixed-length sequences, EOS between documents, boundaries in position_ids."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from domainllm.data.pack import pack


class CharTokenizer:
    """One token per character (ord), EOS = 0: makes expected sequences easy to write."""

    eos_token_id = 0

    def __call__(self, texts, add_special_tokens=False, verbose=False):
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


def test_sequences_boundaries_and_tail(tmp_path: Path) -> None:
    docs = [{"text": "abc", "source": "x"}, {"text": "defghij", "source": "y"}, {"text": "kl", "source": "x"}]
    result = pack(docs, CharTokenizer(), 5, LocalFileSystem(), str(tmp_path), batch_docs=2, sequences_per_shard=2)
    rows = [r for f in sorted(tmp_path.glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    ids = [[chr(i) if i else "|" for i in r["input_ids"]] for r in rows]
    assert ["".join(x) for x in ids] == ["abc|d", "efghi", "j|kl|"]
    assert [r["doc_lens"] for r in rows] == [[4, 1], [5], [2, 3]]
    assert rows[0]["position_ids"] == [0, 1, 2, 3, 0] and rows[2]["position_ids"] == [0, 1, 0, 1, 2]
    assert result.sequences == 3 and result.docs_split == 2 and result.tail_tokens_dropped == 0
    assert result.tokens_by_source == {"x": 7, "y": 8}
    assert len(list(tmp_path.glob("part-*.parquet"))) == 2  # two sequences per shard


def test_unfilled_tail_is_dropped_and_counted(tmp_path: Path) -> None:
    result = pack([{"text": "abcdefg", "source": "x"}], CharTokenizer(), 5, LocalFileSystem(), str(tmp_path))
    assert result.sequences == 1 and result.tail_tokens_dropped == 3


def test_a_tokenizer_without_eos_is_refused(tmp_path: Path) -> None:
    tok = CharTokenizer()
    tok.eos_token_id = None
    with pytest.raises(ValueError, match="no EOS token"):
        pack([], tok, 5, LocalFileSystem(), str(tmp_path))
