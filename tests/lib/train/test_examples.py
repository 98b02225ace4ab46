"""SFT and DPO input formats: each accepted shape becomes chat messages, and each broken
record is rejected with the field at fault and a stable reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from domainllm.train.example_store import validate_records
from domainllm.train.examples import ExampleError, dpo_triple, sft_messages

USER, BOT = "user", "assistant"


def test_alpaca_with_and_without_input() -> None:
    assert sft_messages({"instruction": "Sum", "input": "1 2", "output": "3"}) == [
        {"role": USER, "content": "Sum\n\n1 2"}, {"role": BOT, "content": "3"}]  # fmt: skip
    msgs = sft_messages({"instruction": "Hi", "input": "", "output": "Hello", "system": "Be brief."})
    assert [m["role"] for m in msgs] == ["system", USER, BOT] and msgs[1]["content"] == "Hi"


def test_messages_and_sharegpt_multi_turn() -> None:
    turns = [{"role": USER, "content": "a"}, {"role": BOT, "content": "b"}, {"role": USER, "content": "c"},
             {"role": BOT, "content": "d"}]  # fmt: skip
    assert sft_messages({"messages": turns}) == turns
    share = [{"from": "system", "value": "s"}, {"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]
    assert sft_messages({"conversations": share}) == [{"role": "system", "content": "s"}, {"role": USER, "content": "a"},
                                                      {"role": BOT, "content": "b"}]  # fmt: skip


@pytest.mark.parametrize(
    ("record", "reason", "field"),
    [
        ({"instruction": "x"}, "missing_field", "`output`"),
        ({"instruction": "x", "output": 3}, "wrong_type", "`output`"),
        ({"instruction": " ", "output": "y"}, "empty_field", "`instruction`"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "bad_role", "`messages[0].role`"),
        ({"messages": [{"role": USER, "content": "a"}, {"role": USER, "content": "b"}]}, "bad_turn_order", "`messages[1].role`"),
        ({"messages": [{"role": USER, "content": "a"}]}, "bad_turn_order", "`messages`"),
        ({"messages": [{"role": USER}]}, "missing_field", "`messages[0].content`"),
        ({"messages": "hello"}, "wrong_type", "`messages`"),
        ({"text": "plain"}, "unknown_format", "text"),
        (["not", "an", "object"], "not_an_object", "JSON object"),
    ],
)
def test_bad_sft_records_name_the_field(record, reason: str, field: str) -> None:
    with pytest.raises(ExampleError) as err:
        sft_messages(record)
    assert err.value.reason == reason
    assert field in str(err.value)


def test_dpo_strings_and_messages() -> None:
    t = dpo_triple({"prompt": "Q?", "chosen": "good", "rejected": "bad"})
    assert t == {"prompt": [{"role": USER, "content": "Q?"}], "chosen": [{"role": BOT, "content": "good"}],
                 "rejected": [{"role": BOT, "content": "bad"}]}  # fmt: skip
    multi = [{"role": "system", "content": "s"}, {"role": USER, "content": "a"}, {"role": BOT, "content": "b"},
             {"role": USER, "content": "c"}]  # fmt: skip
    t = dpo_triple({"prompt": multi, "chosen": [{"role": BOT, "content": "x"}], "rejected": [{"role": BOT, "content": "y"}]})
    assert t["prompt"] == multi


@pytest.mark.parametrize(
    ("record", "reason", "field"),
    [
        ({"prompt": "q", "chosen": "a"}, "missing_field", "`rejected`"),
        ({"prompt": "q", "chosen": "same", "rejected": "same "}, "same_answers", "`chosen` and `rejected`"),
        ({"prompt": [{"role": BOT, "content": "q"}], "chosen": "a", "rejected": "b"}, "bad_turn_order", "`prompt[0].role`"),
        ({"prompt": "q", "chosen": [{"role": USER, "content": "a"}], "rejected": "b"}, "bad_turn_order", "`chosen`"),
    ],
)
def test_bad_dpo_records_name_the_field(record, reason: str, field: str) -> None:
    with pytest.raises(ExampleError) as err:
        dpo_triple(record)
    assert err.value.reason == reason
    assert field in str(err.value)


def test_bad_records_are_quarantined_with_file_line_and_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sft.jsonl"
    lines = [json.dumps({"instruction": "a", "output": "b"}), "{broken", json.dumps({"instruction": "secret-ish", "output": ""}),
             "", json.dumps({"messages": [{"role": USER, "content": "q"}, {"role": BOT, "content": "r"}]})]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    out = validate_records(LocalFileSystem(), str(path), lambda r: {"messages": sft_messages(r)})
    assert len(out.rows) == 2 and out.rows[0]["id"] == "sft.jsonl:1"
    assert out.counts["records_in"] == 4 and out.counts["quarantined"] == 2
    assert out.counts["quarantined.invalid_json"] == 1 and out.counts["quarantined.empty_field"] == 1
    assert [(q["position"], q["reason"]) for q in out.quarantine] == [(2, "invalid_json"), (3, "empty_field")]
    assert "sft.jsonl record 3: field `output` is empty" in caplog.text
    assert "secret-ish" not in caplog.text  # the record's text is never logged


def test_a_file_without_any_valid_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(ExampleError, match="none of its 1 records is a valid example .unknown_format: 1."):
        validate_records(LocalFileSystem(), str(path), lambda r: {"messages": sft_messages(r)})
