"""The demo's SFT examples from module synopses."""

from __future__ import annotations

from domainllm.demo.instructions import build_sft_examples, parse_synopsis
from domainllm.train.examples import sft_messages

SYN = "Foo::Bar - frobnicate the widgets.\n\nSYNOPSIS\n\nuse Foo::Bar;\nmy $f = Foo::Bar->new;\n$f->frob(1);\n"


def test_parse_synopsis() -> None:
    assert parse_synopsis(SYN) == ("Foo::Bar", "frobnicate the widgets", "use Foo::Bar;\nmy $f = Foo::Bar->new;\n$f->frob(1);")
    assert parse_synopsis("no synopsis here") is None
    assert parse_synopsis("Name - desc\n\nSYNOPSIS\n\n   \n") is None


def test_examples_per_module_are_valid_and_deterministic() -> None:
    docs = [(f"d{i}", SYN.replace("Foo::Bar", f"Mod{i}")) for i in range(30)] + [("x", "not a synopsis")]
    rows = list(build_sft_examples(docs, max_answer_chars=30))
    assert rows == list(build_sft_examples(docs, max_answer_chars=30))
    kinds = {r["kind"] for r in rows}
    assert {"what", "how", "multi_turn"} <= kinds and kinds & {"typos", "other_language"}
    for r in rows:
        assert sft_messages({"messages": r["messages"]}) == r["messages"]  # every example passes validation
    how = next(r for r in rows if r["kind"] == "how")
    assert how["messages"][1]["content"] == "use Mod0;\nmy $f = Mod0->new;"  # whole lines within 30 chars
    multi = next(r for r in rows if r["kind"] == "multi_turn")
    assert [m["role"] for m in multi["messages"]] == ["user", "assistant", "user", "assistant"]
