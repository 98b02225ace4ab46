"""SFT's packed rows kept as rows (SDPA/eager) compute exactly the loss of TRL's flattened
padding-free batch: the same tokens are targets and no example attends to another."""

from __future__ import annotations

from pathlib import Path

import torch

from domainllm.demo.tokenizer import CHAT_TEMPLATE
from domainllm.train.packed import PackedRowsCollator
from tests.lib.train.test_lora import tiny_base


def test_rows_and_flattened_batches_give_the_same_loss(tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tiny_base(tmp_path / "base")
    tok = AutoTokenizer.from_pretrained(tmp_path / "base")
    tok.chat_template = CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base", attn_implementation="sdpa").eval()
    chats = [[{"role": "user", "content": "sub " * (i % 5 + 1)}, {"role": "assistant", "content": "hello world " * (i % 3 + 1)}]
             for i in range(24)]  # fmt: skip
    args = SFTConfig(output_dir=str(tmp_path / "o"), max_length=160, packing=True, assistant_only_loss=True, use_cpu=True,
                     bf16=False, report_to=[])  # fmt: skip
    rows = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"messages": chats}),
                      processing_class=tok).train_dataset.to_list()  # fmt: skip
    rows = sorted(rows, key=lambda r: -len(r["seq_lengths"]))[:4]
    assert len(rows[0]["seq_lengths"]) > 1 and len({len(r["input_ids"]) for r in rows}) > 1  # shared, and uneven rows
    ours = PackedRowsCollator(tok.pad_token_id)(rows)
    trl = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)(rows)
    assert int((ours["labels"] != -100).sum()) == int((trl["labels"] != -100).sum()) > 0
    with torch.no_grad():
        a = model(input_ids=ours["input_ids"], position_ids=ours["position_ids"], labels=ours["labels"]).loss
        b = model(input_ids=trl["input_ids"], position_ids=trl["position_ids"], labels=trl["labels"]).loss
    assert torch.allclose(a, b, atol=1e-5), (a, b)
