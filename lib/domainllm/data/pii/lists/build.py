"""Builds the name lists the PII name checks read, from Faker's person providers (MIT
licensed; Faker is needed only to rebuild them: `pip install faker`):

    .venv/bin/python -m domainllm.data.pii.lists.build

- `given_names.txt` and `surnames.txt`: the Latin-script given names and surnames of every
  locale Faker has (English and the European, Latin American, African and romanized Asian
  ones), one per line, lower-cased. A PERSON span from the English NER model is kept when one
  of its words is in them (or it has an initial), which drops `Serif Bold`, `Debian Package`.
- `surnames_zh.txt`: Chinese surnames (single and compound, simplified and traditional) with
  Faker's frequency, most common first; the Chinese name detector starts a name only at one.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
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
    ordered = sorted(zh.items(), key=lambda kv: (-kv[1], kv[0]))
    (HERE / "surnames_zh.txt").write_text("".join(f"{n}\t{w:g}\n" for n, w in ordered), encoding="utf-8")
    print(f"{len(given)} given names, {len(surnames)} surnames, {len(zh)} Chinese surnames")


if __name__ == "__main__":
    build()
