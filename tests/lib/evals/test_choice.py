"""Multiple choice: the three file formats, clear errors for bad records, and option scores
that are exactly the model's log-likelihoods of each continuation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from domainllm.evals.choice import ChoiceDataError, parse_items, prompt_and_options, score_items
from tests.lib.train.test_lora import tiny_base


def test_jsonl_mmlu_and_cmmlu_files() -> None:
    jsonl = json.dumps({"id": "q1", "question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": "B"})
    (item,) = parse_items(jsonl, "set.jsonl")
    assert (item.id, item.choices, item.answer) == ("q1", ("3", "4", "5", "6"), 1)
    mmlu = '"What is 2+2?",3,4,5,6,B\n"Capital of France?",Rome,Paris,Oslo,Bern,b\n'
    assert [i.answer for i in parse_items(mmlu, "math_test.csv")] == [1, 1]
    cmmlu = "Question,A,B,C,D,Answer\n中国的首都是哪里？,上海,北京,广州,深圳,B\n"
    (c,) = parse_items(cmmlu, "cmmlu.csv")
    assert c.question == "中国的首都是哪里？" and c.choices[1] == "北京" and c.answer == 1


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ('{"question": "q", "choices": ["a", "b"], "answer": "C"}', "s.jsonl", "s.jsonl line 1: field `answer` is 'C'; expected a letter A-B"),
        ('{"question": "q", "choices": ["a"], "answer": 0}', "s.jsonl", "field `choices` must list at least two"),
        ('{"choices": ["a", "b"], "answer": 0}', "s.jsonl", "field `question` is missing"),
        ("{oops", "s.jsonl", "s.jsonl line 1: not valid JSON"),
        ("q,a,b\n", "m.csv", "m.csv row 1: expected question, options and answer columns"),
        ("", "e.jsonl", "e.jsonl holds no questions"),
    ],
)
def test_bad_files_are_clear_errors(text: str, name: str, message: str) -> None:
    with pytest.raises(ChoiceDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_items(text, name)


def test_scores_are_the_continuations_log_likelihoods(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tiny_base(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    items = parse_items("\n".join(json.dumps({"question": q, "choices": ["sub", "return 'world'", "my %h"], "answer": 1})
                                  for q in ("hello?", "what does sub hello return?")), "t.jsonl")  # fmt: skip
    for scoring in ("letter", "text"):
        results = score_items(model, tok, items, scoring, batch_size=2)
        for item, result in zip(items, results, strict=True):
            context, options = prompt_and_options(item, scoring)
            for option, got in zip(options, result.scores, strict=True):
                ctx = tok(context, add_special_tokens=False)["input_ids"]
                cont = tok(option, add_special_tokens=False)["input_ids"]
                with torch.no_grad():
                    logits = model(torch.tensor([ctx + cont])).logits[0].log_softmax(-1)
                want = sum(float(logits[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))
                assert got == pytest.approx(want / len(option) if scoring == "text" else want, abs=1e-4)
            assert result.predicted == max(range(3), key=result.scores.__getitem__)


def test_the_shipped_general_set_is_valid() -> None:
    from importlib.resources import files

    items = parse_items((files("domainllm.evals") / "sets" / "general-mc.jsonl").read_text(), "general-mc.jsonl")
    assert len(items) == 24 and len({i.id for i in items}) == 24
    assert len({i.answer for i in items}) >= 3  # answers are not all the same letter
