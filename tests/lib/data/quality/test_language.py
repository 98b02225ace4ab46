"""Language identification in the quality step: each text document gets its language and
confidence, keep lists remove the rest with a reason, code keeps its programming language."""

from __future__ import annotations

import json

from domainllm.data.quality.filter import QualityFilter
from domainllm.data.quality.language import LanguageId
from domainllm.spec.quality import QualityConfig

EN = "The quick brown fox jumps over the lazy dog, and then it runs back into the forest to sleep."
ZH = "数据清洗是训练语言模型之前最重要的步骤之一，它决定了模型最终能学到什么样的知识。"
FR = "Le renard brun rapide saute par-dessus le chien paresseux, puis il retourne dormir dans la forêt."


def test_languages_are_identified_with_a_confidence() -> None:
    found = LanguageId().identify([EN, ZH, FR, "12345 !!! ---", ""])
    assert [lang for lang, _ in found] == ["en", "zh", "fr", "und", "und"]
    assert all(score > 0.8 for _, score in found[:3]) and found[3][1] == 0.0


def _row(text: str, source: str = "docs", kind: str = "text", lang: str = "und") -> dict:
    return {"id": text[:8], "text": text, "source": source, "kind": kind, "lang": lang, "domain": "domain", "metadata": "{}"}


def test_keep_lists_remove_other_languages_per_source_and_record_what_was_found() -> None:
    cfg = QualityConfig.model_validate({"prose": {"min_words": 1}, "code": {"min_lines": 1},
                                        "language": {"keep": ["en"], "keep_by_source": {"zh-docs": ["zh", "en"]}}})  # fmt: skip
    step = QualityFilter(cfg)
    rows = [_row(EN), _row(ZH), _row(ZH, source="zh-docs"), _row(FR, lang="fr"), _row("my $x = shift;", kind="code", lang="perl")]
    verdicts = step.batch(rows)
    assert [v.reason if v else None for v in verdicts] == [None, "language", None, "language", None]
    assert "zh" in verdicts[1].detail and "['en']" in verdicts[1].detail
    assert [r["lang"] for r in rows] == ["en", "zh", "zh", "fr", "perl"]  # the source's own `lang` stays
    meta = json.loads(rows[0]["metadata"])
    assert meta["lang_id"] == "en" and meta["lang_score"] > 0.8
    assert json.loads(rows[4]["metadata"]) == {}  # code is not identified
    assert step.languages == {"en": 1, "zh": 2, "fr": 1, "perl": 1}


def test_identification_can_be_turned_off() -> None:
    step = QualityFilter(QualityConfig.model_validate({"prose": {"min_words": 1}, "language": {"identify": False}}))
    rows = [_row(EN)]
    assert step.batch(rows) == [None] and rows[0]["lang"] == "und" and step.langid is None
