"""Near-dedup labelled set from real text: planted crawl-like copies and hard negatives.

    .venv/bin/python -m bench.realtext.dedup_set --out bench/.data/realtext-dedup --docs 20000 --seed 0

Base documents come from bench/realtext/sources.py (real text of this machine, near-duplicates
among them removed by char-5-gram Jaccard >= 0.5). They are split by a hash of their source
FILE path (no file feeds both parts) into `tune` (70%) and `heldout` (30%: never look at it
while tuning). In each part:

- near-exact copies: for ~25% of base documents, 1-3 copies, each with 1-3 of the crawl
  perturbations of PERTURBATIONS (applied in that list's order), mild enough that a person
  would call the copy the same document;
- hard negatives, which must not be removed: templated pages (one site template, ~40% of the
  page, around different real bodies that are not base documents) and pairs of base documents
  similar but different (char-5-gram Jaccard 0.3-0.5 by the filter's measure: sibling man
  pages, versions of one function, one format's config files).

Written to OUT: PART.jsonl (`{"id","text","kind","label_of"}`, rows shuffled, ids opaque;
label_of is a copy's original, else null) and PART.labels.json (every copy's original,
perturbations, kind and its word-3-gram and char-5-gram Jaccard with the original, measured
after lower-casing with every non-alphanumeric character a separator; the hard negatives; each
document's source file), summary.json, and the sources table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from bench.realtext.sources import DEFAULT_MIX, KINDS, Doc, char5, collect, jaccard, source_table

TUNE_PERCENT = 70

# ---------------------------------------------------------------- the measure of the breakdowns

_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric runs: every non-alphanumeric character is a separator."""
    return _TOKEN.findall(text.lower())


def word3(text: str) -> set[tuple[str, ...]]:
    t = tokens(text)
    if len(t) < 3:
        return {tuple(t)} if t else set()
    return {tuple(t[i : i + 3]) for i in range(len(t) - 2)}


def char5_sep(text: str) -> set[str]:
    s = " ".join(tokens(text))
    return {s[i : i + 5] for i in range(max(len(s) - 4, 1))} if s else set()


def similarity(a: str, b: str) -> tuple[float, float]:
    """(word-3-gram Jaccard, char-5-gram Jaccard) after lower-case + non-alphanumerics as separators."""
    return round(jaccard(word3(a), word3(b)), 4), round(jaccard(char5_sep(a), char5_sep(b)), 4)


# ---------------------------------------------------------------- crawl perturbations

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W\d_]{2,}")

BOILERPLATE_EN = [
    "Home | Docs | Blog | About",
    "Skip to main content",
    "Share: Twitter Facebook LinkedIn",
    "Last updated: 2023-11-14",
    "Was this page helpful? Yes No",
    "Home > Documentation > Reference",
    "Print this page | Email | Bookmark",
    "Sign in | Register | Help",
    "This site uses cookies. By continuing to browse you agree to our use of cookies. Learn more | Accept",
    "Copyright (c) 2024 The Authors. Content licensed under CC BY-SA 4.0.",
    "Licensed under the Apache License, Version 2.0. See LICENSE for details.",
    "We use cookies to improve your experience on our site. Accept all | Reject all | Cookie settings",
    "Home  Products  Solutions  Pricing  Docs  Community  Blog  Contact us  Log in  Get started",
    "Subscribe to our newsletter for the latest updates, tutorials and release notes. Your email address: Subscribe",
    "Terms of Service | Privacy Policy | Accessibility | Sitemap | Contact | (c) 2024 All rights reserved.",
]
BOILERPLATE_ZH = [
    "首页 | 文档 | 博客 | 关于",
    "跳转到主要内容",
    "分享到：微博 微信 QQ空间",
    "最后更新：2023-11-14",
    "当前位置：首页 > 文档中心 > 参考手册",
    "登录 | 注册 | 帮助中心",
    "本站使用 Cookie 以提升您的浏览体验。继续浏览即表示您同意我们使用 Cookie。了解更多 | 接受",
    "版权所有 © 2024 保留所有权利。本文内容遵循 CC BY-SA 4.0 许可协议。",
    "关于我们 | 联系我们 | 隐私政策 | 使用条款 | 网站地图 | 京ICP备12345678号-1",
    "订阅我们的邮件列表，获取最新的教程、更新和发布说明。请输入您的邮箱：订阅",
]

_PUNCT_SWAP = {";": ",", ",": ";", ".": ",", ":": ";", "'": '"', '"': "'", "(": "[", ")": "]"}
_FULL = "，。：；！？（）“”‘’、"
_HALF = ",.:;!?()\"\"''、"
_FULL_TO_HALF = {f: h for f, h in zip(_FULL, _HALF, strict=True) if f != "、"}
_HALF_TO_FULL = {",": "，", ":": "：", ";": "；", "!": "！", "?": "？", "(": "（", ")": "）"}


def p_word_edits(t: str, kind: str, r: random.Random) -> str | None:
    """<= 1% of the words (Chinese: characters) deleted, doubled, replaced or given a typo."""
    if kind == "prose_zh":
        idx = [m.start() for m in _CJK.finditer(t)]
        if len(idx) < 100:
            return None
        chars = list(t)
        for i in r.sample(idx, max(1, int(len(idx) * r.uniform(0.002, 0.01)))):
            op = r.random()
            chars[i] = "" if op < 0.4 else chars[i] * 2 if op < 0.7 else t[r.choice(idx)]
        return "".join(chars)
    words = list(_WORD.finditer(t))
    if len(words) < 50:
        return None
    pick = sorted(r.sample(range(len(words)), max(1, int(len(words) * r.uniform(0.003, 0.01)))), reverse=True)
    for i in pick:
        m = words[i]
        w = m.group()
        op = r.random()
        if op < 0.3:
            new = ""
        elif op < 0.5:
            new = f"{w} {w}"
        elif op < 0.75:
            new = words[r.randrange(len(words))].group()
        else:
            j = r.randrange(len(w) - 1)
            new = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        t = t[: m.start()] + new + t[m.end() :]
    return t


def p_case(t: str, kind: str, r: random.Random) -> str | None:
    """A few words (1-4%) upper-, lower- or title-cased, or the first line upper-cased."""
    words = list(_WORD.finditer(t))
    if len(words) < 30:
        return None
    if r.random() < 0.25:
        first, _, rest = t.partition("\n")
        if first.upper() != first:
            return first.upper() + "\n" + rest
    out, last = [], 0
    for m in sorted(r.sample(words, max(2, int(len(words) * r.uniform(0.01, 0.04)))), key=lambda m: m.start()):
        w = m.group()
        new = r.choice([w.upper(), w.lower(), w.capitalize(), w.swapcase()])
        out.append(t[last : m.start()] + new)
        last = m.end()
    return "".join(out) + t[last:]


_PUNCT_AT = re.compile(r"[.,;:()'\"](?=\S)|(?<=\S)[.,;:()'\"]")


def p_punct(t: str, kind: str, r: random.Random) -> str | None:
    """Punctuation glued to or detached from its words, or swapped (`a.b(c;` vs `a .b(c,`),
    at 3-15% of the punctuation marks."""
    marks = list(_PUNCT_AT.finditer(t))
    if len(marks) < 5:
        return None
    pick = sorted(r.sample(marks, max(2, int(len(marks) * r.uniform(0.03, 0.15)))), key=lambda m: m.start())
    out, last = [], 0
    for m in pick:
        c, i = m.group(), m.start()
        op = r.random()
        if op < 0.35 and c in _PUNCT_SWAP:
            new = _PUNCT_SWAP[c]
        elif op < 0.65:
            new = " " + c if i > 0 and t[i - 1] != " " else c
        elif i + 1 < len(t) and t[i + 1] == " ":
            new, i2 = c, m.end() + 1  # the space after it removed: glued to the next word
            out.append(t[last:i] + new)
            last = i2
            continue
        else:
            new = c + " "
        out.append(t[last:i] + new)
        last = m.end()
    return "".join(out) + t[last:]


def p_spaces(t: str, kind: str, r: random.Random) -> str | None:
    """Spaces between words removed (0.3-1.5%, words glued) or doubled (2-10%)."""
    spaces = [m.start() for m in re.finditer(r"(?<=\S) (?=\S)", t)]
    if len(spaces) < 20:
        return None
    glue = set(r.sample(spaces, max(1, int(len(spaces) * r.uniform(0.003, 0.015)))))
    double = set(r.sample(spaces, int(len(spaces) * r.uniform(0.02, 0.1)))) - glue
    return "".join("" if i in glue else "  " if i in double else c for i, c in enumerate(t))


def p_zh_width(t: str, kind: str, r: random.Random) -> str | None:
    """Full-width punctuation made half-width (or the other way round), as a converter does."""
    if any(c in t for c in _FULL_TO_HALF) and r.random() < 0.7:
        return "".join(_FULL_TO_HALF.get(c, c) for c in t)
    if not any(c in t for c in _HALF_TO_FULL):
        return None
    return re.sub(r"[,:;!?()](?!\d)", lambda m: _HALF_TO_FULL[m.group()], t)


def p_zh_spaces(t: str, kind: str, r: random.Random) -> str | None:
    """Spaces inserted between CJK and Latin/digits ("pangu" spacing) and between a few (1-3%)
    CJK characters."""
    s = re.sub(r"([\u3400-\u9fff])([A-Za-z0-9%])", r"\1 \2", t)
    s = re.sub(r"([A-Za-z0-9%])([\u3400-\u9fff])", r"\1 \2", s)
    idx = [m.end() for m in _CJK.finditer(s)]
    extra = set(r.sample(idx, int(len(idx) * r.uniform(0.01, 0.03)))) if idx else set()
    s = "".join(" " + c if i in extra else c for i, c in enumerate(s))
    return s if s != t else None


_HYPHEN_BREAK = re.compile(r"(\w)[\u2010-](\n[ \t]*)(\w)")


def p_reflow(t: str, kind: str, r: random.Random) -> str | None:
    """Paragraphs re-wrapped at another width (or unwrapped), hyphenated line breaks joined
    (man pages') or introduced."""
    t = _HYPHEN_BREAK.sub(r"\1\3", t)
    width = r.choice([0, 60, 72, 100, 120])
    out = []
    for para in re.split(r"(\n[ \t]*\n)", t):
        if not para.strip() or para.startswith("\n"):
            out.append(para)
            continue
        indent = re.match(r"[ \t]*", para).group()
        if kind == "prose_zh":
            out.append(_reflow_zh(para, width // 2 or 30, r))
            continue
        flat = " ".join(line.strip() for line in para.split("\n"))
        if width == 0:
            out.append(indent + flat)
        else:
            lines = textwrap.wrap(flat, width, initial_indent=indent, subsequent_indent=indent,
                                  break_long_words=False, break_on_hyphens=False)  # fmt: skip
            if r.random() < 0.3:  # a hyphenated break here and there
                lines = _hyphenate(lines, r)
            out.append("\n".join(lines))
    s = "".join(out)
    return s if s != t else None


def _reflow_zh(para: str, width: int, r: random.Random) -> str:
    """Chinese: hard-wrapped lines (as long as most) joined without a space, as a browser
    shows them, or lines over `width` characters broken there (a list of short items stays)."""
    lines = para.split("\n")
    if r.random() < 0.5:
        longest = max(len(x) for x in lines)
        out = [lines[0]]
        for x in lines[1:]:
            wrapped = len(out[-1]) >= 0.7 * longest and not re.search(r"[。！？：；」』）.!?:]$", out[-1])
            out[-1:] = [out[-1] + x.strip()] if wrapped else [out[-1], x]
        return "\n".join(out)
    return "\n".join(x[i : i + width] for x in lines for i in range(0, max(len(x), 1), width))


def _hyphenate(lines: list[str], r: random.Random) -> list[str]:
    out = list(lines)
    for i in range(len(out) - 1):
        nxt = out[i + 1].lstrip()
        word = nxt.split(" ", 1)[0]
        if len(word) >= 8 and word.isalpha() and r.random() < 0.3:
            cut = len(word) // 2
            out[i] = out[i] + " " + word[:cut] + "-"
            out[i + 1] = out[i + 1][: len(out[i + 1]) - len(nxt)] + nxt[len(word) :].lstrip()
    return [x for x in out if x.strip()]


def p_tabs(t: str, kind: str, r: random.Random) -> str | None:
    """Leading indentation: 4 (or 8) spaces to tabs, or tabs to 4 spaces."""
    if "\n\t" in t:
        return re.sub(r"(?m)^\t+", lambda m: "    " * len(m.group()), t)
    n = r.choice([4, 8])
    s = re.sub(rf"(?m)^(?:{' ' * n})+", lambda m: "\t" * (len(m.group()) // n), t)
    return s if s != t else None


def p_trailing_ws(t: str, kind: str, r: random.Random) -> str | None:
    """Trailing spaces or tabs on 10-50% of the lines."""
    lines = t.split("\n")
    if len(lines) < 3:
        return None
    f = r.uniform(0.1, 0.5)
    return "\n".join(x + r.choice([" ", "  ", "\t", "   "]) if r.random() < f else x for x in lines)


def p_markup(t: str, kind: str, r: random.Random) -> str | None:
    """Markdown or HTML markup left in: code in fences or <pre>, paragraphs in <p>, headings
    marked, a few words bold, <br> at line ends."""
    if kind in ("code", "config"):
        if r.random() < 0.5:
            return f"```{r.choice(['', 'python', 'c', 'text', 'bash'])}\n{t}\n```"
        return "<pre><code>" + t + "</code></pre>"  # tags left in; entities are `encoding`'s
    style = r.choices(["html", "markdown", "br"], weights=[2, 2, 1])[0]
    paras = re.split(r"\n[ \t]*\n", t)
    if style == "br":
        return t.replace("\n", "<br>\n")
    out = []
    for p in paras:
        head = re.fullmatch(r"[A-Z][A-Z0-9 ,/()&'-]{1,40}", p.strip())
        if style == "html":
            out.append(f"<h2>{p.strip()}</h2>" if head else f"<p>{p}</p>")
        else:
            if head:
                out.append(f"## {p.strip()}")
                continue
            words = list(_WORD.finditer(p))
            if words and r.random() < 0.5:
                m = r.choice(words)
                p = p[: m.start()] + f"**{m.group()}**" + p[m.end() :]
            out.append(p)
    return ("\n\n" if style == "markdown" else "\n").join(out)


def p_partial(t: str, kind: str, r: random.Random) -> str | None:
    """1-5% of the document dropped at its start or its end (anywhere, mid-word included)."""
    n = int(len(t) * r.uniform(0.01, 0.05))
    return t[n:] if r.random() < 0.5 else t[: len(t) - n]


def p_boilerplate(t: str, kind: str, r: random.Random) -> str | None:
    """A site nav, cookie banner or license line as header and/or footer, <= 10% of the length."""
    pool = BOILERPLATE_ZH if kind == "prose_zh" else BOILERPLATE_EN
    budget = int(0.1 * len(t))
    fits = [b for b in pool if len(b) + 2 <= budget]
    if not fits:
        return None
    head = r.choice(fits)
    where = r.choice(["head", "foot", "both"])
    if where == "both":
        rest = [b for b in fits if len(b) + len(head) + 4 <= budget and b != head]
        if not rest:
            where = "head"
        else:
            return f"{head}\n\n{t}\n\n{r.choice(rest)}"
    return f"{head}\n\n{t}" if where == "head" else f"{t}\n\n{head}"


def p_encoding(t: str, kind: str, r: random.Random) -> str | None:
    """Encoding damage: some non-ASCII characters mojibake'd (UTF-8 read as Latin-1/cp1252) or
    replaced by U+FFFD, or HTML entities (&amp; &#39; &quot; &lt; &gt;, numeric for non-ASCII)."""
    non_ascii = [m.start() for m in re.finditer(r"[^\x00-\x7f]", t)]
    modes = ["entities"] if re.search(r"[&'\"<>]", t) or non_ascii else []
    if non_ascii:
        modes += ["mojibake", "replacement"]
    if not modes:
        return None
    mode = r.choice(modes)
    if mode == "entities":  # one escaping bug: &<> only, apostrophes only, or quotes too
        style = r.choices(["amp_lt_gt", "apostrophe", "quotes"], weights=[4, 4, 2])[0]
        s = t
        if style != "apostrophe":
            s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if style != "amp_lt_gt":
            s = s.replace("'", r.choice(["&#39;", "&#x27;", "&rsquo;"]))
        if style == "quotes":
            s = s.replace('"', "&quot;")
            if non_ascii and kind != "prose_zh":
                s = re.sub(r"[^\x00-\x7f]", lambda m: f"&#{ord(m.group())};", s)
        return s if s != t else None
    # Chinese: a few short spans; other text: most of its (few) non-ASCII characters
    if kind == "prose_zh":
        starts = r.sample(non_ascii, max(1, len(non_ascii) // 150))
        hit = {i for s in starts for i in range(s, s + r.randint(2, 6))}
    else:
        hit = set(r.sample(non_ascii, max(1, int(len(non_ascii) * r.uniform(0.3, 1.0)))))
    codec = r.choice(["latin-1", "cp1252"])

    def damage(c: str) -> str:
        if mode == "replacement" or ord(c) < 0x80:
            return "\ufffd" if ord(c) >= 0x80 else c
        return c.encode("utf-8").decode(codec, errors="replace")

    return "".join(damage(c) if i in hit else c for i, c in enumerate(t))


def p_crlf(t: str, kind: str, r: random.Random) -> str | None:
    """Windows line endings."""
    return t.replace("\n", "\r\n") if "\n" in t else None


# application order (a copy's 1-3 perturbations are applied in this order)
PERTURBATIONS = {
    "word_edits": p_word_edits,
    "case": p_case,
    "punct": p_punct,
    "spaces": p_spaces,
    "zh_width": p_zh_width,
    "zh_spaces": p_zh_spaces,
    "reflow": p_reflow,
    "tabs": p_tabs,
    "trailing_ws": p_trailing_ws,
    "encoding": p_encoding,
    "markup": p_markup,
    "partial": p_partial,
    "boilerplate": p_boilerplate,
    "crlf": p_crlf,
}
APPLICABLE = {
    "prose_en": ["word_edits", "case", "punct", "spaces", "reflow", "trailing_ws", "markup", "partial",
                 "boilerplate", "encoding", "crlf"],  # fmt: skip
    "man": ["word_edits", "case", "punct", "spaces", "reflow", "trailing_ws", "markup", "partial", "boilerplate",
            "encoding", "crlf"],  # fmt: skip
    "code": ["word_edits", "punct", "spaces", "tabs", "trailing_ws", "markup", "partial", "boilerplate", "encoding",
             "crlf"],  # fmt: skip
    "config": ["word_edits", "punct", "spaces", "tabs", "trailing_ws", "markup", "partial", "boilerplate",
               "encoding", "crlf"],  # fmt: skip
    "prose_zh": ["word_edits", "punct", "zh_width", "zh_spaces", "reflow", "trailing_ws", "markup", "partial",
                 "boilerplate", "encoding", "crlf"],  # fmt: skip
}


def perturb(text: str, kind: str, r: random.Random) -> tuple[str, list[str]]:
    """A near-exact copy with 1-3 applicable perturbations (one that changes nothing is replaced)."""
    want = r.choice([1, 1, 2, 2, 3])
    names = list(APPLICABLE[kind])
    r.shuffle(names)
    chosen: list[str] = []
    for name in names:
        if len(chosen) == want:
            break
        if PERTURBATIONS[name](text, kind, random.Random(0)) not in (None, text):
            chosen.append(name)
    order = [n for n in PERTURBATIONS if n in chosen]
    out, applied = text, []
    for name in order:
        new = PERTURBATIONS[name](out, kind, r)
        if new is not None and new != out:
            out, applied = new, [*applied, name]
    return out, applied


# ---------------------------------------------------------------- templated pages


SITES_EN = ["DevDocs Hub", "LinuxRef", "OpenManuals", "Unix Notes", "KnowledgeBase Central", "CodeSnippets.io",
            "TechWiki", "SysAdmin Handbook"]  # fmt: skip
SITES_ZH = ["开发者文档中心", "Linux 中文社区", "开源手册网", "技术知识库", "程序员之家", "运维笔记"]
LINK_PATTERNS_EN = ["How to configure {} with {}", "Understanding {} and {}", "{} vs {}: what changed",
                    "Getting started with {}", "Troubleshooting {} errors", "Best practices for {} in {}",
                    "A guide to {}", "Migrating from {} to {}"]  # fmt: skip
LINK_PATTERNS_ZH = ["如何配置{}和{}", "{}入门指南", "深入理解{}", "{}常见问题解答", "{}与{}的区别", "{}最佳实践"]


def _vocab(docs: list[Doc], r: random.Random) -> tuple[list[str], list[str], list[str]]:
    en, zh, paths = Counter(), Counter(), []
    for d in docs:
        if d.kind == "prose_zh":
            zh.update(m for m in re.findall(r"[\u4e00-\u9fff]{2,4}", d.text))
        else:
            en.update(w.lower() for w in re.findall(r"[A-Za-z]{5,12}", d.text))
        if d.kind == "code":
            paths.append(d.path)
    return [w for w, _ in en.most_common(3000)], [w for w, _ in zh.most_common(2000)], sorted(set(paths))


def make_template(kind: str, size: int, r: random.Random, vocab: tuple[list[str], list[str], list[str]]) -> tuple[str, str]:  # fmt: skip
    """(header, footer) of one site's page template, `size` characters together."""
    en, zh, paths = vocab
    if kind == "prose_zh":
        site = r.choice(SITES_ZH)
        head = [f"{site}", "首页 | 文档 | 教程 | 下载 | 社区 | 博客 | 关于我们 | 登录 | 注册",
                "本网站使用 Cookie 来改善您的浏览体验并分析网站流量。继续使用本网站即表示您同意我们的 Cookie 政策。 接受 | 拒绝 | 设置",
                f"当前位置：首页 > {r.choice(zh)} > {r.choice(zh)}"]  # fmt: skip
        foot = [f"版权所有 © 2015-2024 {site} 保留所有权利", "关于我们 | 联系我们 | 隐私政策 | 使用条款 | 网站地图 | 友情链接",
                f"京ICP备{r.randint(10000000, 99999999)}号-1"]  # fmt: skip

        def link() -> str:
            pat = r.choice(LINK_PATTERNS_ZH)
            return pat.format(*(r.choice(zh) for _ in range(pat.count("{}"))))

        side_title = "相关文章"
    elif kind == "code":
        user, repo = r.choice(en), r.choice(en)
        head = ["Skip to content", "Navigation Menu", "Product  Solutions  Resources  Open Source  Enterprise  Pricing",
                "Search or jump to...", "Sign in  Sign up", f"{user} / {repo}  Public",
                f"Notifications  Fork {r.randint(10, 900)}  Star {r.randint(1, 40)}.{r.randint(0, 9)}k",
                f"Code  Issues {r.randint(10, 400)}  Pull requests {r.randint(1, 90)}  Actions  Projects  Wiki  Security  Insights",
                "Files", "main"]  # fmt: skip
        foot = ["Footer", "© 2024 GitHub, Inc.", "Footer navigation",
                "Terms  Privacy  Security  Status  Docs  Contact  Manage cookies  Do not share my personal information"]  # fmt: skip
        tree = r.sample(paths, min(len(paths), 400)) if paths else [r.choice(en) + ".py" for _ in range(400)]
        it = iter(tree)

        def link() -> str:
            return "/".join(next(it, r.choice(en)).split("/")[-2:])

        side_title = "Go to file"
    else:
        site = r.choice(SITES_EN)
        head = [f"{site}", "Home | Documentation | Tutorials | Downloads | Community | Blog | About | Log in",
                "We use cookies to personalise content and ads, to provide social media features and to analyse "
                "our traffic. By clicking Accept you agree to our use of cookies. Accept | Decline | Settings",
                f"Home > {r.choice(en).capitalize()} > {r.choice(en).capitalize()}"]  # fmt: skip
        foot = [f"Copyright © 2012-2024 {site}. All rights reserved.",
                "About | Contact | Privacy Policy | Terms of Use | Advertise | Sitemap | RSS",
                "Found a mistake? Edit this page on GitHub."]  # fmt: skip

        def link() -> str:
            pat = r.choice(LINK_PATTERNS_EN)
            return pat.format(*(r.choice(en) for _ in range(pat.count("{}"))))

        side_title = "Related articles"
    header, footer = "\n".join(head), "\n".join(foot)
    side = [side_title]
    while len(header) + len(footer) + sum(len(x) + 1 for x in side) < size:
        side.append(link())
    # the side bar as part of the header or of the footer, as sites place it
    if r.random() < 0.5:
        return header + "\n" + "\n".join(side), footer
    return header, "\n".join(side) + "\n" + footer


# ---------------------------------------------------------------- building a part


def part_of(path: str) -> str:
    h = int(hashlib.sha1(path.encode()).hexdigest()[:8], 16)
    return "tune" if h % 100 < TUNE_PERCENT else "heldout"


def similar_pairs(docs: list[Doc], lo: float = 0.3, hi: float = 0.5) -> list[dict]:
    """Pairs of base documents with filter-measure Jaccard in [lo, hi) (all base documents are
    below hi by construction): real similar-but-different documents."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=lo, num_perm=128)
    for d in docs:
        lsh.insert(d.id, d.minhash)
    by_id = {d.id: d for d in docs}
    sets: dict[str, set] = {}
    pairs = []
    for d in docs:
        for other in lsh.query(d.minhash):
            if other <= d.id:
                continue
            a = sets.setdefault(d.id, char5(d.text))
            b = sets.setdefault(other, char5(by_id[other].text))
            j = jaccard(a, b)
            if lo <= j < hi:
                w3, c5 = similarity(d.text, by_id[other].text)
                pairs.append({"a": d.id, "b": other, "kind": f"{d.kind}/{by_id[other].kind}",
                              "filter_jaccard": round(j, 4), "word3_jaccard": w3, "char5_jaccard": c5})  # fmt: skip
    return pairs


def build_part(name: str, base: list[Doc], bodies: list[Doc], r: random.Random, copy_fraction: float,
               vocab: tuple, new_id) -> tuple[list[dict], dict]:  # fmt: skip
    rows = [{"id": d.id, "text": d.text, "kind": d.kind, "label_of": None} for d in base]
    paths = {d.id: d.path for d in base}
    copies = {}
    for d in r.sample(base, round(copy_fraction * len(base))):
        for _ in range(r.choice([1, 2, 3])):
            text, applied = perturb(d.text, d.kind, r)
            if text == d.text or not applied:
                continue
            cid = new_id()
            w3, c5 = similarity(d.text, text)
            copies[cid] = {"original": d.id, "kind": d.kind, "perturbations": applied, "word3_jaccard": w3,
                           "char5_jaccard": c5}  # fmt: skip
            rows.append({"id": cid, "text": text, "kind": d.kind, "label_of": d.id})
            paths[cid] = d.path
    templated = []
    by_kind: dict[str, list[Doc]] = {}
    for b in bodies:
        by_kind.setdefault("prose_zh" if b.kind == "prose_zh" else "code" if b.kind == "code" else "prose_en", []).append(b)
    for tkind, pool in sorted(by_kind.items()):
        i = 0
        while len(pool) - i >= 3:
            group = pool[i : i + r.randint(3, 6)]
            i += len(group)
            share = r.uniform(0.35, 0.45)
            mean = sum(len(b.text) for b in group) / len(group)
            header, footer = make_template(tkind, int(mean * share / (1 - share)), r, vocab)
            ids, fractions = [], []
            for b in group:
                title = b.text.strip().split("\n", 1)[0][:80]
                page = f"{header}\n\n{title}\n\n{b.text}\n\n{footer}" if tkind != "code" else f"{header}\n{b.path.lstrip('/')}\n\n{b.text}\n\n{footer}"  # fmt: skip
                pid = new_id()
                rows.append({"id": pid, "text": page, "kind": b.kind, "label_of": None})
                paths[pid] = b.path
                ids.append(pid)
                fractions.append(round(1 - len(b.text) / len(page), 3))
            templated.append({"template_kind": tkind, "ids": ids, "boilerplate_fraction": fractions})
    pairs = similar_pairs(base)
    r.shuffle(rows)
    labels = {
        "part": name,
        "docs": len(rows),
        "base_docs": len(base),
        "base_ids": sorted(d.id for d in base),
        "copies": copies,
        "hard_negatives": {"templated": templated, "similar_pairs": pairs},
        "kinds": {row["id"]: row["kind"] for row in rows},
        "paths": paths,
    }
    return rows, labels


def summary_of(labels: dict) -> dict:
    kinds = Counter(labels["kinds"][i] for i in labels["base_ids"])
    copy_kinds = Counter(c["kind"] for c in labels["copies"].values())
    pert = Counter(p for c in labels["copies"].values() for p in c["perturbations"])
    w3 = [c["word3_jaccard"] for c in labels["copies"].values()]
    buckets = Counter(_bucket(x) for x in w3)
    neg = labels["hard_negatives"]
    return {
        "docs": labels["docs"],
        "base_docs": labels["base_docs"],
        "base_by_kind": dict(sorted(kinds.items())),
        "copies": len(labels["copies"]),
        "originals_with_copies": len({c["original"] for c in labels["copies"].values()}),
        "copies_by_kind": dict(sorted(copy_kinds.items())),
        "perturbations": dict(pert.most_common()),
        "copies_by_word3_jaccard": dict(sorted(buckets.items())),
        "templated_pages": sum(len(t["ids"]) for t in neg["templated"]),
        "templated_groups": len(neg["templated"]),
        "similar_pairs": len(neg["similar_pairs"]),
        "similar_pairs_by_kind": dict(Counter(p["kind"] for p in neg["similar_pairs"]).most_common()),
    }


def _bucket(x: float) -> str:
    edges = [0.3, 0.5, 0.6, 0.7, 0.8, 0.9]
    lo = max([e for e in edges if x >= e], default=0.0)
    hi = min([e for e in edges if x < e], default=1.0)
    return f"[{lo:.1f},{hi:.1f}{']' if hi == 1.0 else ')'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/.data/realtext-dedup")
    ap.add_argument("--docs", type=int, default=20000, help="distinct base documents, both parts together")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copy-fraction", type=float, default=0.25, help="base documents given 1-3 copies")
    ap.add_argument("--templated-fraction", type=float, default=0.04,
                    help="templated pages (hard negatives), as a fraction of the base documents")  # fmt: skip
    args = ap.parse_args()
    t0 = time.monotonic()
    r = random.Random(args.seed)
    body_kinds = ("prose_en", "man", "code", "prose_zh")
    extra = args.templated_fraction / sum(DEFAULT_MIX[k] for k in body_kinds)
    wanted = {k: round(args.docs * DEFAULT_MIX[k] * (1 + (extra if k in body_kinds else 0))) for k in KINDS}
    print(f"collecting {sum(wanted.values())} distinct real documents ({args.docs} base + template bodies)", file=sys.stderr)
    found, srcs = collect(wanted, seed=args.seed, log=lambda s: print(s, file=sys.stderr))
    table = source_table(srcs)
    print(table)
    # template bodies: a share of each body kind, drawn before the base documents are fixed
    base, bodies = [], []
    for k in KINDS:
        docs = found[k]
        if k in body_kinds:
            n_bodies = round(len(docs) * extra / (1 + extra))
            idx = set(r.sample(range(len(docs)), n_bodies))
            bodies += [d for i, d in enumerate(docs) if i in idx]
            base += [d for i, d in enumerate(docs) if i not in idx]
        else:
            base += docs
    base = base[: args.docs]
    used_ids: set[str] = set()

    def new_id() -> str:
        while True:
            i = f"d{r.getrandbits(48):012x}"
            if i not in used_ids:
                used_ids.add(i)
                return i

    for d in base + bodies:
        d.id = new_id()
    vocab = _vocab(base, random.Random(args.seed))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"seed": args.seed, "docs_asked": args.docs, "sources": table, "parts": {}}
    for part in ("tune", "heldout"):
        pb = [d for d in base if part_of(d.path) == part]
        bb = [d for d in bodies if part_of(d.path) == part]
        rows, labels = build_part(part, pb, bb, random.Random(f"{args.seed}-{part}"), args.copy_fraction, vocab, new_id)
        with open(out / f"{part}.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        labels["seed"] = args.seed
        (out / f"{part}.labels.json").write_text(json.dumps(labels, ensure_ascii=False))
        summary["parts"][part] = summary_of(labels)
        files = len({d.path for d in pb})
        print(f"\n## {part}: {files} source files\n" + json.dumps(summary["parts"][part], indent=1, ensure_ascii=False))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    (out / "sources.md").write_text(table + "\n")
    print(f"\nwrote {out}/{{tune,heldout}}.jsonl, .labels.json, summary.json in {time.monotonic() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
