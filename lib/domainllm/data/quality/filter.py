"""The quality step: language identification, rules by document kind, the bad-word list,
then the optional model."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from domainllm.data.blocklist import BlockListMatcher
from domainllm.data.quality.code import code_removal
from domainllm.data.quality.prose import prose_removal
from domainllm.data.records import Removal
from domainllm.spec.quality import QualityConfig


class QualityFilter:
    """`batch(rows) -> [Removal | None]`: one verdict per document, in order."""

    name = "quality"

    def __init__(self, cfg: QualityConfig) -> None:
        self.cfg = cfg
        self.bad_words = BlockListMatcher(cfg.bad_words, "bad_words")
        self.languages: Counter[str] = Counter()
        self.langid = None
        if cfg.language.identify:
            from domainllm.data.quality.language import LanguageId

            self.langid = LanguageId()
        self.scorer = None
        if cfg.scorer is not None:
            from domainllm.data.classifier import TransformersScorer

            self.scorer = TransformersScorer(cfg.scorer)

    def rules(self, text: str, kind: str) -> Removal | None:
        verdict = code_removal(text, self.cfg.code) if kind == "code" else prose_removal(text, self.cfg.prose)
        return verdict or self.bad_words(text)

    def language(self, rows: Sequence[dict]) -> list[Removal | None]:
        """Identify the language of each text document (in its row) and check it against the
        keep list that applies; code documents are counted by their programming language."""
        rules = self.cfg.language
        verdicts: list[Removal | None] = [None] * len(rows)
        texts = [i for i, r in enumerate(rows) if r.get("kind", "text") != "code"] if self.langid is not None else []
        found = self.langid.identify([rows[i]["text"] for i in texts]) if texts else []
        for i, (lang, score) in zip(texts, found, strict=True):
            row = rows[i]
            if score < rules.min_score:
                lang = "und"
            meta = json.loads(row.get("metadata") or "{}")
            meta.update(lang_id=lang, lang_score=score)
            row["metadata"] = json.dumps(meta, ensure_ascii=False)
            if row.get("lang") in (None, "", "und"):
                row["lang"] = lang
            keep = rules.keep_by_source.get(row.get("source", ""), rules.keep)
            if keep and lang not in keep:
                verdicts[i] = Removal("language", f"{lang} ({score:.2f}) not in {list(keep)}")
        for r in rows:
            self.languages[r.get("lang") or "und"] += 1
        return verdicts

    def batch(self, rows: Sequence[dict]) -> list[Removal | None]:
        skip = self.cfg.skip_sources
        language = self.language(rows)
        verdicts = [language[i] or (None if r.get("source") in skip else self.rules(r["text"], r.get("kind", "text")))
                    for i, r in enumerate(rows)]  # fmt: skip
        if self.scorer is not None:
            todo = [i for i, v in enumerate(verdicts) if v is None]
            scores = self.scorer.scores([rows[i]["text"] for i in todo])
            for i, score in zip(todo, scores, strict=True):
                if score < self.cfg.scorer.min_score:
                    verdicts[i] = Removal("model_score", f"score {score:.3f} < {self.cfg.scorer.min_score}")
        return verdicts
