"""The comparison report: per-role means per metric, a dash where a role is missing."""

from __future__ import annotations

from domainllm.evals.report import plot, table


def test_table_and_plot() -> None:
    scores = {"perplexity.domain.loss": {"candidate": [4.9, 5.0], "base": [6.4, 6.5]},
              "choice.general.correct": {"candidate": [1.0, 0.0], "champion": [1.0, 1.0], "base": [0.0, 0.0]}}  # fmt: skip
    text = table(scores)
    assert "| choice.general.correct | 2 | 0.5000 | 1.0000 | 0.0000 |" in text
    assert "| perplexity.domain.loss | 2 | 4.9500 | - | 6.4500 |" in text
    png = plot(scores)
    assert png.startswith(b"\x89PNG") and png == plot(scores)  # identical bytes for identical data
