"""PII scrubbing: our detectors find, `replace` turns findings into typed placeholders.

Our pattern detectors (`patterns.py`) report spans; `replace` turns every finding into a
typed placeholder (`<EMAIL>`, `<PHONE>`, ...), overlaps resolved as presidio's
AnonymizerEngine does (a span inside another goes; of two that cross, the higher score, then
the longer, wins). We do not call the AnonymizerEngine itself: importing presidio_anonymizer
2.2.366 imports presidio_analyzer, transformers and torch (4.7 s of a 7 s start-up, for a
string replacement). Person names (`names.py`): in English with the NER component of a spaCy pipeline
(the shipped en_core_web_sm unless `ner_model` names another), run only around capitalized
word pairs; in Chinese with jieba's tagger checked against Chinese surnames. A transformers
token-classification folder as `ner_model` runs through presidio's AnalyzerEngine instead
(~100x slower: it tags every character).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from domainllm.data.pii.patterns import DEFAULT_KEEP_IP_SCOPES, ENTITIES, Detector, detectors

log = logging.getLogger(__name__)


def detector_recognizer(detector: Detector, language: str = "en"):
    """One of our pattern detectors as a presidio analyzer recognizer. (presidio_analyzer
    imports transformers and torch, ~10 s: only the NER path pays for it.)"""
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer import RecognizerResult as AnalyzerResult

    class DetectorRecognizer(EntityRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[AnalyzerResult]:
            return [AnalyzerResult(detector.entity, s, e, 1.0) for s, e in detector.find(text)]

    return DetectorRecognizer(supported_entities=[detector.entity], name=f"domainllm-{detector.entity.lower()}",
                              supported_language=language)  # fmt: skip


def placeholder(entity: str) -> str:
    return f"<{entity}>"


@dataclass(frozen=True, slots=True)
class Finding:
    """What presidio calls a RecognizerResult: the same fields."""

    entity_type: str
    start: int
    end: int
    score: float


def resolve(found: list) -> list:
    """The findings that are replaced: a span inside a kept one goes; of two that cross, the
    higher score wins, then the longer one."""
    kept: list = []
    for f in sorted(found, key=lambda f: (f.start, -(f.end - f.start), -f.score)):
        if kept and f.start < kept[-1].end:
            last = kept[-1]
            if f.end <= last.end:
                continue  # inside the kept one
            if (f.score, f.end - f.start) > (last.score, last.end - last.start):
                kept[-1] = f
            continue
        kept.append(f)
    return kept


def replace(text: str, found: list) -> tuple[str, Counter[str]]:
    """The text with each kept finding replaced by its placeholder, and counts by type."""
    kept = resolve(found)
    parts, pos = [], 0
    for f in kept:
        parts += [text[pos : f.start], placeholder(f.entity_type)]
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), Counter(f.entity_type for f in kept)


class Scrubber:
    def __init__(self, entities: tuple[str, ...] = ENTITIES, ner_model: Path | None = None,
                 ner_languages: tuple[str, ...] = ("en",), min_score: float = 0.6,
                 keep_ip_scopes: tuple[str, ...] = DEFAULT_KEEP_IP_SCOPES, names_en: bool = True,
                 names_zh: bool = True) -> None:  # fmt: skip
        unknown = sorted(set(entities) - set(ENTITIES))
        if unknown:
            raise ValueError(f"unknown PII entities {unknown}; known: {list(ENTITIES)}")
        self.entities = tuple(entities)
        self.detectors = tuple(d for d in detectors(keep_ip_scopes) if d.entity in self.entities)
        self.min_score = min_score
        self.analyzer = None
        self.english = self.chinese = None
        self.ner_model = ner_model
        names = "PERSON" in self.entities
        if names and ner_model is not None and (Path(ner_model) / "config.json").is_file():
            self.analyzer = _analyzer(Path(ner_model), self.detectors, ner_languages)
        elif names and (names_en or ner_model is not None):
            from domainllm.data.pii.names import EnglishNames

            self.english = EnglishNames(Path(ner_model) if ner_model is not None else None)
        if names and names_zh:
            from domainllm.data.pii.names import ChineseNames

            self.chinese = ChineseNames()

    @property
    def detects_names(self) -> bool:
        return self.analyzer is not None or self.english is not None or self.chinese is not None

    def find_many(self, texts: list[str], language: str = "en") -> list[list[Finding]]:
        """Every finding in each text; names are looked for in one batch."""
        if self.analyzer is not None:
            lang = language if language in self.analyzer.supported_languages else self.analyzer.supported_languages[0]
            return [self.analyzer.analyze(text, language=lang, entities=list(self.entities), score_threshold=self.min_score)
                    for text in texts]  # fmt: skip
        found = []
        for text in texts:
            lower = text.lower()
            found.append([Finding(d.entity, s, e, 1.0) for d in self.detectors for s, e in d.find(text, lower)])
        if self.english is not None:
            for results, spans in zip(found, self.english.find(texts), strict=True):
                results.extend(Finding("PERSON", s, e, 0.85) for s, e in spans)
        if self.chinese is not None:
            for results, text in zip(found, texts, strict=True):
                results.extend(Finding("PERSON", s, e, 0.85) for s, e in self.chinese.find(text))
        return found

    def find(self, text: str, language: str = "en") -> list[Finding]:
        return self.find_many([text], language)[0]

    def scrub_many(self, texts: list[str], language: str = "en") -> list[tuple[str, Counter[str]]]:
        """Each text with every finding replaced by its placeholder, and counts by type."""
        out = []
        for text, found in zip(texts, self.find_many(texts, language), strict=True):
            if not found:
                out.append((text, Counter()))
                continue
            out.append(replace(text, found))
        return out

    def scrub(self, text: str, language: str = "en") -> tuple[str, Counter[str]]:
        return self.scrub_many([text], language)[0]


def _analyzer(model: Path, detectors: tuple[Detector, ...], languages: tuple[str, ...]):
    """presidio's AnalyzerEngine with our recognizers and the given NER model for names."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration

    ner_config = NerModelConfiguration(labels_to_ignore=["ORG", "GPE", "LOC", "NORP", "FAC", "DATE", "TIME", "CARDINAL",
                                                         "ORDINAL", "MONEY", "PERCENT", "QUANTITY", "PRODUCT", "EVENT",
                                                         "WORK_OF_ART", "LAW", "LANGUAGE", "MISC"])  # fmt: skip
    if (model / "config.json").is_file():  # a transformers token-classification model
        from presidio_analyzer.nlp_engine import TransformersNlpEngine

        nlp = TransformersNlpEngine(
            models=[{"lang_code": lang, "model_name": {"spacy": "blank", "transformers": str(model)}} for lang in languages],
            ner_model_configuration=ner_config,
        )
    else:
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        nlp = SpacyNlpEngine(models=[{"lang_code": lang, "model_name": str(model)} for lang in languages],
                             ner_model_configuration=ner_config)  # fmt: skip
    nlp.load()
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    registry = RecognizerRegistry(supported_languages=list(languages))
    for lang in languages:
        registry.add_recognizer(SpacyRecognizer(supported_language=lang, supported_entities=["PERSON"]))
        for d in detectors:
            registry.add_recognizer(detector_recognizer(d, lang))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=list(languages))
