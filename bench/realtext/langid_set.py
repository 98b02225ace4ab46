"""Language-ID labelled set from real text: gettext catalogs, English docs and man pages, code.

    .venv/bin/python -m bench.realtext.langid_set --out bench/.data/realtext-langid [--per-label 1000] [--seed 0]

- the ~25 languages with the most .mo files under /usr/share/locale/<locale>/LC_MESSAGES (label:
  the locale's language, `zh_CN`/`zh_TW` -> zh, `pt_BR` -> pt, `sr@latin` -> sr; English locales
  left out): consecutive msgstrs joined into 100-1000 character documents, translations equal
  to their msgid (untranslated names, codes) left out;
- `en`: /usr/share/doc prose and rendered man pages (bench/realtext/sources.py), re-cut to
  100-1000 characters;
- `code`: Python, C headers, Perl, shell and JavaScript of the same sources, re-cut likewise.

Split into tune (70%) and heldout (30%) by a hash of the source file. At most --per-label
documents per label and --per-file per file; exact duplicates dropped. Writes OUT/tune.jsonl and
OUT/heldout.jsonl (`{"id","text","label","source"}`, shuffled) and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from bench.realtext.sources import code_blocks, mo_pairs, pack, paragraphs, source_docs, sources

LOCALE_ROOT = "/usr/share/locale"
TUNE_PERCENT = 70


def language(locale: str) -> str:
    return re.split(r"[_@.]", locale)[0]


def catalogs(top: int) -> dict[str, list[str]]:
    """The `top` languages with the most .mo files (English excluded): language -> sorted .mo paths."""
    by_lang: dict[str, list[str]] = defaultdict(list)
    if not os.path.isdir(LOCALE_ROOT):
        return {}
    for loc in sorted(os.listdir(LOCALE_ROOT)):
        d = os.path.join(LOCALE_ROOT, loc, "LC_MESSAGES")
        lang = language(loc)
        if lang in ("en", "C", "POSIX") or not os.path.isdir(d) or len(lang) > 3:
            continue
        by_lang[lang] += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".mo")]
    ranked = sorted(by_lang, key=lambda k: (-len(by_lang[k]), k))[:top]
    return {k: sorted(by_lang[k]) for k in ranked}


def mo_docs(path: str, r: random.Random) -> list[str]:
    strings = [s.strip() for i, s in mo_pairs(path) if s.strip() and s.strip() != i.strip()]
    return pack(strings, r, lo=120, hi=900, sep="\n", max_chars=1000, min_chars=100)


def recut(text: str, kind: str, r: random.Random) -> list[str]:
    blocks = code_blocks(text) if kind == "code" else paragraphs(text)
    return pack(blocks, r, lo=120, hi=900, sep="\n\n", max_chars=1000, min_chars=100)


def letters(text: str) -> int:
    return sum(c.isalpha() for c in text)


def part_of(path: str) -> str:
    return "tune" if int(hashlib.sha1(path.encode()).hexdigest()[:8], 16) % 100 < TUNE_PERCENT else "heldout"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/.data/realtext-langid")
    ap.add_argument("--languages", type=int, default=25, help="catalog languages, most .mo files first")
    ap.add_argument("--per-label", type=int, default=1000)
    ap.add_argument("--per-file", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    r = random.Random(args.seed)
    seen: set[str] = set()
    docs: list[dict] = []
    files_used: Counter = Counter()

    def take(label: str, texts: list[str], path: str, rr: random.Random) -> int:
        texts = [t for t in texts if letters(t) >= 60 and t not in seen]
        if len(texts) > args.per_file:
            texts = [texts[i] for i in sorted(rr.sample(range(len(texts)), args.per_file))]
        for t in texts:
            seen.add(t)
            docs.append({"text": t, "label": label, "source": path})
        files_used[label] += bool(texts)
        return len(texts)

    cats = catalogs(args.languages)
    print(f"{len(cats)} catalog languages: " + ", ".join(f"{k} ({len(v)} .mo)" for k, v in cats.items()), file=sys.stderr)
    for lang, paths in cats.items():
        order = list(paths)
        r.shuffle(order)
        n = 0
        for p in order:
            if n >= args.per_label:
                break
            rr = random.Random(f"{args.seed}-{p}")
            n += take(lang, mo_docs(p, rr)[: args.per_label - n + args.per_file], p, rr)
    # English and code: the dedup set's sources, weighted alike, documents re-cut shorter
    for label, kinds in (("en", ("prose_en", "man")), ("code", ("code",))):
        srcs = [s for s in sources() if s.kind in kinds]
        gens = {s.name: source_docs(s, random.Random(f"{args.seed}-{s.name}")) for s in srcs}
        live, pulled, n = list(srcs), Counter(), 0
        while n < args.per_label and live:
            s = min(live, key=lambda s: (pulled[s.name] / s.weight, s.name))
            d = next(gens[s.name], None)
            if d is None:
                live.remove(s)
                continue
            pulled[s.name] += 1
            rr = random.Random(f"{args.seed}-{d.path}-{pulled[s.name]}")
            got = take(label, recut(d.text, d.kind, rr)[:2], d.path, rr)
            n += got
        print(f"  {label}: {n} documents from " + ", ".join(f"{k} {v}" for k, v in pulled.items()), file=sys.stderr)
    # per label, cap (files were read whole, a label may be slightly over)
    by_label: dict[str, list[dict]] = defaultdict(list)
    for d in docs:
        by_label[d["label"]].append(d)
    final = [d for rows in by_label.values() for d in rows[: args.per_label]]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"seed": args.seed, "languages": list(cats), "files_used": dict(files_used), "parts": {}}
    for part in ("tune", "heldout"):
        rows = [d for d in final if part_of(d["source"]) == part]
        r.shuffle(rows)
        with open(out / f"{part}.jsonl", "w", encoding="utf-8") as fh:
            for i, d in enumerate(rows):
                fh.write(json.dumps({"id": f"{part}-{i:06d}", **d}, ensure_ascii=False) + "\n")
        dist = Counter(d["label"] for d in rows)
        lengths = [len(d["text"]) for d in rows]
        summary["parts"][part] = {"docs": len(rows), "files": len({d["source"] for d in rows}),
                                  "labels": dict(sorted(dist.items(), key=lambda kv: -kv[1])),
                                  "chars_min_mean_max": [min(lengths), round(sum(lengths) / len(lengths)), max(lengths)]
                                  if lengths else None}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    labels = sorted({d["label"] for d in final}, key=lambda k: -len(by_label[k]))
    print("| label | tune | heldout |\n|---|---|---|")
    for k in labels:
        print(f"| {k} | {summary['parts']['tune']['labels'].get(k, 0)} | {summary['parts']['heldout']['labels'].get(k, 0)} |")
    for part, s in summary["parts"].items():
        print(f"{part}: {s['docs']} documents from {s['files']} files, characters min/mean/max {s['chars_min_mean_max']}")
    print(f"wrote {out}/tune.jsonl, heldout.jsonl, summary.json", file=sys.stderr)


if __name__ == "__main__":
    main()
