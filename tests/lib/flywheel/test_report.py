"""The flywheel report: requests per intent route, with how many ran with retrieval."""

from __future__ import annotations


def test_requests_by_intent_route() -> None:
    from domainllm.flywheel.report import markdown

    counts = {"harvest": {"harvested": 5, "intent.code_help": 3, "intent.code_help.retrieval": 3, "intent.chitchat": 2,
                          "intent.chitchat.retrieval": 0}}  # fmt: skip
    text = markdown(counts, {"run_id": "r"}, [])
    assert "| code_help | 3 | 60% | 3 |" in text and "| chitchat | 2 | 40% | 0 |" in text
