"""Builds the name lists the PII name checks read, from Faker's person providers (MIT
licensed; Faker is needed only to rebuild them: `pip install faker`):

    .venv/bin/python -m domainllm.data.pii.lists.build

- `given_names.txt` and `surnames.txt`: the Latin-script given names and surnames of every
  locale Faker has (English and the European, Latin American, African and romanized Asian
  ones), one per line, lower-cased. A PERSON span from the English NER model is kept when one
  of its words is in them (or it has an initial), which drops `Serif Bold`, `Debian Package`.
- `surnames_zh.txt`: Chinese surnames (single and compound, simplified and traditional) with
  Faker's frequency, most common first; the Chinese name detector starts a name only at one.
- `given_chars_zh.txt`: how name-like each Chinese character is after a surname: of jieba's
  dictionary words that contain it, the share tagged as a person name (`nr`) that start with
  a surname, for characters seen in at least 5 such names. `伟` 0.74, `俊` 0.77, but `证`
  0.02, `性` 0.03: jieba tags `许可证` and `严重性` `nr` too, and this is what tells them apart.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f][A-Za-z\u00c0-\u024f'’-]+")


def _names(provider: type, *attrs: str) -> list[str]:
    out: list[str] = []
    for attr in attrs:
        value = getattr(provider, attr, None)
        if isinstance(value, dict):
            out.extend(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, str))
    return out


COMPOUND_SURNAMES_ZH = ["上官", "欧阳", "司马", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙", "宇文", "司徒", "夏侯", "轩辕", "端木", "独孤", "南宫", "西门", "闻人", "申屠", "万俟", "赫连", "澹台", "公冶", "宗政", "濮阳", "太叔", "仲孙", "钟离", "司空", "呼延", "鲜于", "百里", "东郭", "歐陽", "諸葛", "司馬", "東方", "公孫", "長孫", "夏侯", "軒轅", "獨孤", "南宮", "鍾離"]  # fmt: skip
"""The compound surnames of the Hundred Family Surnames that are still in use (Faker knows four)."""
COMMON_SURNAMES_ZH = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
"""The hundred most common surnames in mainland China (Faker lacks 肖, 付 and 闫)."""


def build() -> None:
    import faker.providers.person as person

    given: set[str] = set()
    surnames: set[str] = set()
    zh: dict[str, float] = {}
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"faker.providers.person.{module.name}").Provider
        for name in _names(provider, "first_names", "first_names_male", "first_names_female", "first_romanized_names",
                           "first_names_nonbinary"):  # fmt: skip
            if _LATIN.fullmatch(name):
                given.add(name.lower())
        for name in _names(provider, "last_names", "last_romanized_names"):
            if _LATIN.fullmatch(name):
                surnames.add(name.lower())
        if module.name in ("zh_CN", "zh_TW"):
            last = provider.last_names
            for name, weight in (last.items() if isinstance(last, dict) else ((n, 0.0) for n in last)):
                zh[name] = max(zh.get(name, 0.0), float(weight))
    (HERE / "given_names.txt").write_text("".join(f"{n}\n" for n in sorted(given)), encoding="utf-8")
    (HERE / "surnames.txt").write_text("".join(f"{n}\n" for n in sorted(surnames)), encoding="utf-8")
    for name in (*COMMON_SURNAMES_ZH, *COMPOUND_SURNAMES_ZH):
        zh.setdefault(name, 0.0)
    ordered = sorted(zh.items(), key=lambda kv: (-kv[1], kv[0]))
    (HERE / "surnames_zh.txt").write_text("".join(f"{n}\t{w:g}\n" for n, w in ordered), encoding="utf-8")
    scores = _given_chars_zh({n for n in zh if len(n) == 1})
    (HERE / "given_chars_zh.txt").write_text("".join(f"{c}\t{v:.3f}\n" for c, v in sorted(scores.items())), encoding="utf-8")
    print(f"{len(given)} given names, {len(surnames)} surnames, {len(zh)} Chinese surnames, {len(scores)} given-name characters")


def _given_chars_zh(surnames: set[str], min_names: int = 5) -> dict[str, float]:
    import jieba

    in_names: Counter[str] = Counter()
    in_words: Counter[str] = Counter()
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as fh:
        for line in fh:
            word, _freq, tag = line.split()
            in_words.update(word)
            if tag == "nr" and 2 <= len(word) <= 3 and word[0] in surnames:
                in_names.update(word[1:])
    return {c: n / in_words[c] for c, n in in_names.items() if n >= min_names}


if __name__ == "__main__":
    build()
