"""The compliance step: built-in and configured block lists per category, the classifier hook."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainllm.data.compliance import ComplianceFilter
from domainllm.spec.compliance import ComplianceConfig
from tests.lib.data.quality.test_scorer import GOOD, SPAM, _train_classifier

CLEAN = "The hash function returns a list of keys; sort them before printing the report."


def verdicts(cfg: ComplianceConfig, texts: list[str], source: str = "s") -> list[str | None]:
    out = ComplianceFilter(cfg).batch([{"text": t, "source": source} for t in texts])
    return [v.reason if v else None for v in out]


def test_builtin_lists_remove_by_category_and_keep_clean_text() -> None:
    texts = [CLEAN, "Best XXX\n  videos here", "where to buy cocaine online fast", "they shouted Heil Hitler",
             "Pornography is discussed in this report.", "A white powerful engine; power users and white space."]  # fmt: skip
    assert verdicts(ComplianceConfig(), texts) == [None, "sexual_content", "illegal_content", "hate_content",
                                                   "sexual_content", None]  # fmt: skip


def test_configured_lists_extend_and_add_categories(tmp_path: Path) -> None:
    (tmp_path / "gambling.txt").write_text("# one per line\nonline casino\nsports betting tips\n")
    cfg = ComplianceConfig.model_validate(
        {"builtin_lists": False, "categories": {"gambling": {"path": str(tmp_path / "gambling.txt")},
                                                "sexual": {"words": ["lewd"], "max_count": 1}}},
        context={"base_dir": tmp_path},
    )  # fmt: skip
    texts = ["Try our ONLINE   CASINO today", "lewd once", "lewd and lewd again", "porn (built-ins are off)"]
    assert verdicts(cfg, texts) == ["gambling_content", None, "sexual_content", None]


def test_skip_sources_and_details_name_no_words() -> None:
    cfg = ComplianceConfig(skip_sources=("curated",))
    assert verdicts(cfg, ["porn"], source="curated") == [None]
    removal = ComplianceFilter(ComplianceConfig()).batch([{"text": "porn porn", "source": "s"}])[0]
    assert removal is not None and "porn" not in removal.detail and removal.detail == "2 block-listed words > 0"


@pytest.mark.slow
def test_classifier_hook_removes_what_the_model_flags(tmp_path: Path) -> None:
    _train_classifier(tmp_path / "clf")  # labels: spam (0), good (1)
    cfg = ComplianceConfig.model_validate(
        {"classifier": {"path": str(tmp_path / "clf"), "label": "spam", "max_score": 0.5}}, context={"base_dir": tmp_path}
    )
    assert verdicts(cfg, GOOD + SPAM) == [None] * 3 + ["classifier_spam"] * 3
