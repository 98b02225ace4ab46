"""Building the mix: proportions, copies of upsampled documents, curriculum order, grouping,
task tags; and the embedding chain."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from domainllm.data.mix import build_mix
from domainllm.data.mix.grouping import embedding_chain, embeddings
from domainllm.data.schema import DOCS_SCHEMA
from domainllm.spec.mix import MixConfig

FS = LocalFileSystem()
TOPICS = {
    "regex": "regular expression pattern match capture group quantifier anchor",
    "hash": "hash key value exists delete each keys values slice",
    "file": "open close read write file handle line binmode seek",
}


def corpus(tmp_path: Path) -> str:
    rng = random.Random(0)
    rows = []
    for i in range(120):
        topic = rng.choice(sorted(TOPICS))
        words = TOPICS[topic].split()
        text = " ".join(rng.choice(words) for _ in range(rng.randint(40, 400)))
        meta = {"task": "qa"} if i % 10 == 0 else {}
        rows.append({"id": f"d{i}-{topic}", "text": text, "source": "perl", "domain": "domain", "lang": "en",
                     "kind": "text", "metadata": json.dumps(meta)})  # fmt: skip
    for i in range(40):
        text = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rng.randint(40, 400)))
        rows.append({"id": f"g{i}", "text": text, "source": "web", "domain": "general", "lang": "en",
                     "kind": "text", "metadata": "{}"})  # fmt: skip
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(2):
        pq.write_table(pa.Table.from_pylist(rows[n::2], schema=DOCS_SCHEMA), folder / f"part-{n:05d}.parquet")
    return str(folder)


def mixed(tmp_path: Path, cfg: MixConfig, name: str = "out"):
    result = build_mix(cfg, {"perl": None, "web": "web-text"}, FS, corpus(tmp_path), FS, str(tmp_path / name),
                       shard_max_records=50)  # fmt: skip
    rows = [r for f in sorted((tmp_path / name).glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    return result, rows


def test_proportions_copies_and_tags(tmp_path: Path) -> None:
    result, rows = mixed(tmp_path, MixConfig(domain_fraction=0.5, max_repeat=4.0))
    chars = {s: sum(len(r["text"]) for r in rows if r["source"] == s) for s in ("perl", "web")}
    assert abs(chars["perl"] / sum(chars.values()) - 0.5) < 0.02  # web upsampled to match
    web_copies = [r["copy"] for r in rows if r["source"] == "web"]
    assert max(web_copies) >= 1
    # copies of one document never sit next to each other: copy k starts after all copies k-1
    assert [r["copy"] for r in rows] == sorted(r["copy"] for r in rows)
    assert {r["task"] for r in rows if r["source"] == "web"} == {"web-text"}
    assert {r["task"] for r in rows if r["id"] in ("d0-regex", "d0-hash", "d0-file")} <= {"qa"}
    assert result.counts["docs_in"] == 160 and result.counts["docs_out"] == len(rows)


def test_curriculum_stages_and_grouping(tmp_path: Path) -> None:
    cfg = MixConfig(domain_fraction=1.0, curriculum={"order_by": "length", "buckets": 4},
                    grouping={"method": "minhash", "similarity": 0.3})  # fmt: skip
    _, rows = mixed(tmp_path, cfg)
    stages = [r["curriculum_stage"] for r in rows]
    assert stages == sorted(stages) and set(stages) == {0, 1, 2, 3}
    lengths = [[len(r["text"]) for r in rows if r["curriculum_stage"] == s] for s in range(4)]
    assert max(lengths[0]) <= min(lengths[3])  # short first
    # within a stage, a group's members are contiguous and share a topic
    for s in range(4):
        labels = [r["group"] for r in rows if r["curriculum_stage"] == s]
        runs = [labels[0]] + [b for a, b in zip(labels, labels[1:], strict=False) if a != b]
        assert len(runs) == len(set(runs))
    grouped = [r for r in rows if sum(1 for x in rows if x["group"] == r["group"]) > 1]
    assert grouped, "similar documents should form groups"


def test_no_grouping_and_shuffled_order_is_deterministic(tmp_path: Path) -> None:
    cfg = MixConfig(domain_fraction=1.0, curriculum={"order_by": "none"}, grouping={"method": "none"})
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    _, a = mixed(tmp_path / "1", cfg)
    _, b = mixed(tmp_path / "2", cfg)
    assert [r["id"] for r in a] == [r["id"] for r in b]


def test_embedding_chain_walks_to_nearest_neighbours() -> None:
    texts = ["Perl regular expressions capture groups", "How to open a file handle in Perl",
             "Regex quantifiers and anchors in Perl patterns", "Reading lines from a file handle"]  # fmt: skip
    order = embedding_chain(embeddings(texts, None), window=10).tolist()
    assert sorted(order) == [0, 1, 2, 3] and order[:2] == [0, 2]  # regex doc next to regex doc
    emb = np.eye(3, dtype=np.float32)
    assert embedding_chain(emb, window=2).tolist() == [0, 1, 2]


def test_perplexity_curriculum_orders_by_a_models_loss(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from domainllm.data.mix.curriculum import PerplexityScorer
    from domainllm.demo.tokenizer import train_tokenizer

    easy = "the cat sat on the mat " * 20
    texts = [easy] * 30 + ["zebra quantum " * 5 + "xylophone jazz " * 5]
    tok = train_tokenizer(texts, vocab_size=300, model_max_length=128)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))  # fmt: skip
    ids = tok([easy] * 8, return_tensors="pt")["input_ids"]
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):  # learn the easy text, so it scores a lower loss than unseen text
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    scorer = PerplexityScorer(str(tmp_path / "lm"), max_tokens=64)
    low, high = scorer.scores([easy, texts[-1]])
    assert low < high

    cfg = MixConfig(domain_fraction=1.0, curriculum={"order_by": "perplexity", "model": str(tmp_path / "lm"),
                                                     "buckets": 2}, grouping={"method": "none"})  # fmt: skip
    _, rows = mixed(tmp_path, cfg)
    assert [r["curriculum_stage"] for r in rows] == sorted(r["curriculum_stage"] for r in rows)


def test_perplexity_needs_a_model() -> None:
    with pytest.raises(ValueError, match="order_by: perplexity needs `model`"):
        MixConfig(curriculum={"order_by": "perplexity"})


def test_heldout_documents_stay_out_of_the_mix_and_do_not_depend_on_the_ratio(tmp_path: Path) -> None:
    def heldout(name: str, fraction: float):
        (tmp_path / name).mkdir()
        result, rows = mixed(tmp_path / name, MixConfig(domain_fraction=fraction, heldout_fraction=0.1))
        held = [r for f in sorted((tmp_path / name / "out" / "heldout").glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
        return result, rows, held

    result, rows, held = heldout("a", 0.7)
    ids = {r["id"] for r in held}
    assert 8 <= len(ids) <= 26 and {r["domain"] for r in held} == {"domain", "general"}  # ~10% of 160
    assert not ids & {r["id"] for r in rows}
    assert result.counts["docs_heldout"] == len(held) == result.counts["heldout.domain"] + result.counts["heldout.general"]
    _, rows_b, held_b = heldout("b", 1.0)
    assert {r["id"] for r in held_b} == ids and {r["source"] for r in rows_b} == {"perl"}
