"""A labelled PII set whose context is real text from this machine (issue 18).

    .venv/bin/python -m bench.realtext.pii_set --out bench/.data/realtext-pii --docs 4000 --seed 0

Contexts (cut into documents of 300-3000 characters at line boundaries):
  en_prose   /usr/share/doc/*/README* and man pages (`MANWIDTH=80 man -l F | col -bx`)
  zh_prose   msgstrs of /usr/share/locale/zh_CN/LC_MESSAGES/*.mo, in catalog order
  code       Python (.venv site-packages), Perl modules (/usr/share/perl*), shell, C headers/examples
  config     /etc/**/*.conf, YAML, INI/CFG/TOML, and KEY=value files (/etc/default/*, os-release)
  copyright  /usr/share/doc/*/copyright (Debian): real names and emails, labelled by the format

PII is planted the way people write it, in frames fitting the context's register (a Perl
module gets `DBI->connect($dsn, 'app', '...')`, a YAML file `password: ...`, a man page a
sentence, a Chinese catalog a Chinese sentence), inserted as whole lines or sentences at
real line/sentence boundaries with the neighbouring indentation. Look-alikes that must
survive are planted the same way. Copyright contexts carry REAL names and emails, labelled
where the Debian format marks them (`Copyright: 2004-2010 Name <email>`); names that look
like organisations (Inc, Foundation, Project, ...) are not labelled.

Record per document (JSONL, one file per part):
  {"id", "text", "kind", "lang", "format", "source",
   "pii": [[entity, value, start, end, subform], ...],
   "lookalikes": [[value, start, end, subform], ...],
   "natural": [[entity, value, start, end], ...]}
`pii` and `lookalikes` hold the first four fields the issue asks for plus the sub-form (e.g.
`PASSWORD`/`dbi-connect`, `IP_ADDRESS`/`v6-compressed-middle`). `natural` are emails already
in the real context and not labelled (a strict regex): not scored, but the runner reports
collateral both with and without them.

Labelling decisions:
- IPs: public and private (RFC 1918, ULA fd00::/8) addresses are PII; loopback, unspecified,
  multicast, netmasks, documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24,
  2001:db8::/32) and `fe80::1` are look-alikes. IPv4-mapped (`::ffff:a.b.c.d`) and NAT64
  (`64:ff9b::a.b.c.d`) forms that embed a public/private IPv4 are PII (they carry it). A
  link-local address with an EUI-64 interface id (`fe80::21a:2bff:fe3c:4d5e%eth0`) embeds the
  device's MAC: PII (sub-form `v6-zone-eui64`, a policy question for ours, reported apart).
- MAC addresses are not one of our entities (nor presidio's): planted as look-alikes that
  must not be taken for IPv6 (sub-form `mac`).
- `user@example.com`-style documentation addresses and service addresses (`git@github.com`)
  are planted neither way.
- Capitalised words that are not people (products, places, `Server`) and Chinese words that
  begin with a common surname character (方法, 周末, 马上) are look-alikes.
- Placeholder secrets (`changeme`, `$PASSWORD`, `${DB_PASS}`, `os.environ[...]`) are look-alikes.
`--disjoint`: heldout documents use frames (a third of every template list of three or more,
by hash) and planted names (a third of the EN first/last names and ZH given characters) that
tune documents never use, so tuning on frames or names shows on heldout. Without it, both
parts share frames and name pools and differ only in their contexts' source files.
Deterministic for a seed on a given machine (the contexts are this machine's files; each
document records its source path).
"""

from __future__ import annotations

import argparse
import base64
import gettext
import gzip
import hashlib
import ipaddress
import json
import os
import random
import re
import string
import subprocess
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / ".venv/lib/python3.11/site-packages"

# --- values -------------------------------------------------------------------------------

HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits


def tok(r: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


def digits(r: random.Random, n: int) -> str:
    return tok(r, n, string.digits)


FIRST = """James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan
Joseph Jessica Thomas Sarah Christopher Karen Charles Lisa Daniel Nancy Matthew Betty Anthony Sandra Mark Margaret
Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa
Timothy Deborah Ronald Stephanie George Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Amy Jacob Kathleen
Gary Angela Nicholas Shirley Eric Brenda Jonathan Emma Stephen Anna Larry Pamela Justin Nicole Scott Samantha
Brandon Katherine Benjamin Christine Samuel Helen Gregory Debra Alexander Rachel Patrick Carolyn Frank Janet
Raymond Maria Jack Catherine Dennis Heather Jerry Diane Tyler Olivia Aaron Julie Jose Joyce Adam Victoria Nathan
Ruth Henry Virginia Zachary Lauren Douglas Kelly Peter Christina Kyle Joan Noah Evelyn Ethan Judith Jeremy Andrea
Walter Hannah Christian Megan Keith Cheryl Roger Jacqueline Terry Martha Austin Madison Sean Teresa Gerald Gloria
Carl Sara Harold Janice Dylan Ann Arthur Kathryn Lawrence Abigail Sophia Jesse Frances Bryan Jean Alice Bruce Judy
Gabriel Isabella Julia Logan Grace Alan Amber Juan Denise Albert Danielle Elijah Beverly Wayne Charlotte Vincent
Natalie Mason Diana Russell Alexis Bradley Lori Philip Marie Eugene Priya Wei Mohammed Aisha Carlos Sofia Hiroshi
Yuki Rajesh Fatima Olga Ivan Mateo Lucia Omar Leila Sven Ingrid Pierre Camille Giulia Marco Ananya Arjun""".split()  # noqa: SIM905

LAST = """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson
Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson
Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell
Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales
Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson
Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long
Ross Foster Jimenez Chen Wang Zhang Liu Singh Kumar Schmidt Müller Novak O'Brien McCarthy Kowalski Ivanov Tanaka
Yamamoto Dubois Rossi Larsen Nakamura Okafor Haddad Petrov Fischer Weber Moreau Silva Santos Costa Andersson""".split()  # noqa: SIM905

ZH_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤") + ["欧阳", "司马", "诸葛", "上官"]  # fmt: skip
ZH_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍建国文辉鹏飞红梅志宏俊宇浩然欣怡涵轩桐彤诺琪东海燕春雷龙晨阳婷倩颖佳慧琳博凯瑞鑫")  # fmt: skip


DISJOINT = {"on": False, "part": "tune"}
"""With `--disjoint`, heldout documents draw their frames and planted names from a share of
the templates and name pools that tune documents never see (see `for_part`)."""


def _heldout_only(item: str) -> bool:
    return int(hashlib.sha1(item.encode()).hexdigest(), 16) % 3 == 0


def for_part(items: list[str], min_items: int = 3) -> list[str]:
    """The items this document's part may use: all of them unless `--disjoint`; then a third
    (by hash) for heldout and the rest for tune, in lists of at least `min_items`."""
    if not DISJOINT["on"] or len(items) < min_items:
        return items
    held = DISJOINT["part"] == "heldout"
    chosen = [x for x in items if _heldout_only(x) == held]
    return chosen or items


def en_name(r: random.Random) -> str:
    first, last = r.choice(for_part(FIRST)), r.choice(for_part(LAST))
    return f"{first} {r.choice(string.ascii_uppercase)}. {last}" if r.random() < 0.12 else f"{first} {last}"


def zh_name(r: random.Random) -> str:
    given = for_part(ZH_GIVEN)
    return r.choice(ZH_SURNAMES) + "".join(r.choice(given) for _ in range(r.choice([1, 1, 2, 2, 2])))


WORDS = ["sunshine", "dragon", "monkey", "falcon", "summer", "winter", "coffee", "tiger", "shadow", "maple", "orange",
         "rocket", "purple", "silver", "banana", "hunter", "soccer", "pepper", "ginger", "rainbow", "thunder", "panda"]  # fmt: skip


def password(r: random.Random, safe: str = "!#%*_-.") -> str:
    """Memorable or random, from characters the frame can hold (`safe` symbols)."""
    sym = lambda: r.choice(safe) if safe else ""  # noqa: E731
    style = r.randrange(7)
    if style == 0:
        w = r.choice(WORDS)
        return f"{w.capitalize()}{r.randint(1970, 2025)}{sym()}"
    if style == 1:
        return f"{r.choice(WORDS)}{r.randint(1, 999)}"
    if style == 2:
        leet = r.choice(WORDS).translate(str.maketrans("aeios", "43105"))
        return f"{leet.capitalize()}{sym()}{r.randint(1, 99)}"
    if style == 3 and "-" in safe:
        return "-".join(r.sample(WORDS, 3)) + str(r.randint(1, 9))
    if style == 4:
        return f"Welcome{sym()}{r.randint(2015, 2025)}" if r.random() < 0.5 else f"Qwerty{r.randint(100, 999)}{sym()}"
    n = r.randint(10, 20)
    body = tok(r, n, ALNUM + (safe * 2 if style == 5 else ""))
    return body if body[0] not in safe else "x" + body[1:]


def luhn_complete(prefix: str, length: int, r: random.Random) -> str:
    body = prefix + digits(r, length - len(prefix) - 1)
    for check in string.digits:
        ds = body + check
        total = 0
        for i, ch in enumerate(reversed(ds)):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d * 2 > 9 else d * 2
            total += d
        if total % 10 == 0:
            return ds
    raise AssertionError


def card(r: random.Random) -> tuple[str, str]:
    net, prefix, length = r.choice([("visa", "4", 16), ("visa", "4", 16), ("mastercard", "5" + str(r.randint(1, 5)), 16),
                                    ("mastercard2", str(r.randint(2221, 2720)), 16), ("amex", r.choice(["34", "37"]), 15),
                                    ("discover", "6011", 16), ("discover", "65", 16), ("jcb", "35" + str(r.randint(28, 89)), 16),
                                    ("unionpay", "62" + digits(r, 2), r.choice([16, 19])), ("diners", "36", 14)])  # fmt: skip
    n = luhn_complete(prefix, length, r)
    style = r.choice(["plain", "space", "space", "dash"])
    if style == "plain":
        return n, f"{net}-plain"
    sep = " " if style == "space" else "-"
    four_six = length in (14, 15)  # Amex 4-6-5, Diners 4-6-4
    groups = [n[:4], n[4:10], n[10:]] if four_six else [n[i : i + 4] for i in range(0, length, 4)]
    return sep.join(groups), f"{net}-grouped"


def bad_luhn(r: random.Random) -> str:
    good = luhn_complete(r.choice(["4", "51", "6011"]), 16, r)
    bad = good[:-1] + str((int(good[-1]) + r.randint(1, 9)) % 10)
    return bad if r.random() < 0.5 else " ".join(bad[i : i + 4] for i in range(0, 16, 4))


CN_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id(r: random.Random, valid: bool = True) -> str:
    region = r.choice(["110105", "110108", "310104", "310115", "440305", "440106", "510107", "330106", "320102",
                       "420106", "610113", "370202", "120101", "500103", "210102", "350203"])  # fmt: skip
    body = f"{region}{r.randint(1950, 2008)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}{r.randint(0, 999):03d}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, CN_W, strict=True)) % 11]
    if not valid:
        check = r.choice([c for c in "0123456789X" if c != check])
    return body + check


def ssn(r: random.Random) -> str:
    area = r.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}"


def phone(r: random.Random, region: str) -> tuple[str, str]:
    if region == "us":
        a, x, n = r.randint(201, 989), r.randint(200, 999), digits(r, 4)
        return r.choice([(f"({a}) {x}-{n}", "us-paren"), (f"{a}-{x}-{n}", "us-dash"), (f"{a}.{x}.{n}", "us-dot"),
                         (f"+1 {a} {x} {n}", "us-plus1"), (f"+1-{a}-{x}-{n}", "us-plus1"),
                         (f"1-800-{x}-{n}", "us-tollfree")])  # fmt: skip
    if region == "intl":
        return r.choice([(f"+44 20 {digits(r, 4)} {digits(r, 4)}", "intl"), (f"+44 7{digits(r, 3)} {digits(r, 6)}", "intl"),
                         (f"+49 30 {digits(r, 8)}", "intl"), (f"+49 151 {digits(r, 8)}", "intl"),
                         (f"+33 1 {digits(r, 2)} {digits(r, 2)} {digits(r, 2)} {digits(r, 2)}", "intl"),
                         (f"+91 {r.randint(70, 99)}{digits(r, 3)} {digits(r, 5)}", "intl"),
                         (f"+81 3-{digits(r, 4)}-{digits(r, 4)}", "intl"), (f"+61 2 {digits(r, 4)} {digits(r, 4)}", "intl"),
                         (f"+55 11 9{digits(r, 4)}-{digits(r, 4)}", "intl"), (f"+7 495 {digits(r, 3)}-{digits(r, 2)}-{digits(r, 2)}", "intl"),
                         (f"+353 1 {digits(r, 3)} {digits(r, 4)}", "intl"), (f"+31 6 {digits(r, 8)}", "intl")])  # fmt: skip
    m = f"1{r.choice('3456789')}{r.randint(0, 9)}"
    a, b = digits(r, 4), digits(r, 4)
    if region == "cn-landline":
        return r.choice([(f"010-{digits(r, 8)}", "cn-landline"), (f"(021) {digits(r, 4)} {digits(r, 4)}", "cn-landline"),
                         (f"0755-{digits(r, 8)}", "cn-landline")])  # fmt: skip
    return r.choice([(f"{m}{a}{b}", "cn-mobile-plain"), (f"{m} {a} {b}", "cn-mobile-sep"), (f"{m}-{a}-{b}", "cn-mobile-sep"),
                     (f"+86 {m}{a}{b}", "cn-mobile-+86"), (f"+86 {m} {a} {b}", "cn-mobile-+86"),
                     (f"+86-{m}-{a}-{b}", "cn-mobile-+86"), (f"0086 {m} {a} {b}", "cn-mobile-+86"),
                     (f"+8613{digits(r, 9)}", "cn-mobile-+86")])  # fmt: skip


MAIL_HOSTS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.co.uk", "qq.com", "163.com", "126.com", "sina.com.cn",
              "protonmail.com", "icloud.com", "gmx.de", "web.de", "orange.fr", "acme-corp.com", "mail.ustc.edu.cn",
              "cs.stanford.edu", "fastmail.fm", "bigbank.co.uk", "initech.io", "contoso.net"]  # fmt: skip


def email(r: random.Random, name: str | None = None) -> str:
    first, last = (name.split()[0], name.split()[-1]) if name and name.isascii() else (r.choice(FIRST), r.choice(LAST))
    first, last = first.lower(), re.sub(r"[^a-z]", "", last.lower())
    user = r.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{r.randint(1, 99)}", f"{first}_{last}",
                     f"{last}.{first}", f"{first}+{r.choice(['lists', 'git', 'news'])}", f"{first}.{last}{r.randint(70, 99)}"])  # fmt: skip
    return f"{user}@{r.choice(MAIL_HOSTS)}"


def ipv4(r: random.Random, private: bool = False) -> str:
    if private:
        return r.choice([f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
                         f"172.{r.randint(16, 31)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
                         f"192.168.{r.randint(0, 255)}.{r.randint(1, 254)}"])  # fmt: skip
    while True:
        ip = f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
        a = ipaddress.IPv4Address(ip)
        if a.is_global and not a.is_multicast and not a.is_reserved:
            return ip


V6_PREFIXES = [(0x2A00, 0x1450), (0x2606, 0x4700), (0x2A03, 0x2880), (0x2001, 0x4860), (0x2400, 0xCB00), (0x2A01, 0x4F8),
               (0x2604, 0xA880), (0x2001, 0x470), (0x2A02, 0x2E0), (0x2620, 0x0), (0x240E, 0x3A1), (0x2408, 0x8207),
               (0x2409, 0x8A1E), (0x2A0E, 0x97C0), (0x2001, 0x67C), (0x2607, 0xF8B0)]  # fmt: skip


def v6_groups(r: random.Random, shape: str) -> list[int]:
    """Eight 16-bit groups of a global (or ULA) address; `shape` picks where zeros are."""
    if r.random() < 0.15:
        g = [0xFD00 | r.randint(0, 255), r.randint(0, 0xFFFF), r.randint(0, 0xFFFF)]  # ULA
    else:
        p = r.choice(V6_PREFIXES)
        g = [p[0], p[1], r.choice([r.randint(0, 0xFFF), r.randint(0, 0xFFFF), 0x4001])]
    g.append(r.choice([r.randint(0, 0xFFF), r.randint(0, 0xFFFF), r.randint(1, 0xFF)]))
    if shape == "middle":  # 2a00:1450:4001:81c::200e
        return g + [0, 0, 0, r.choice([r.randint(1, 0xFFFF), r.randint(1, 0xFF)])]
    if shape == "end":  # 2a03:2880:f10d:83::
        return g + [0, 0, 0, 0]
    if shape == "eui64":
        mac = [r.randint(0, 255) for _ in range(6)]
        return g + [((mac[0] ^ 2) << 8) | mac[1], (mac[2] << 8) | 0xFF, 0xFE00 | mac[3], (mac[4] << 8) | mac[5]]
    return g + [r.randint(0, 0xFFF) if r.random() < 0.5 else r.randint(0, 0xFFFF) for _ in range(4)]  # random iid


def ipv6(r: random.Random) -> tuple[str, str, str]:
    """(value, subform, how to wrap it: plain / bracket-port / zone)."""
    form = r.choice(["full", "nozeros", "middle", "middle", "end", "mapped", "nat64", "start-hex", "upper", "bracket",
                     "url", "zone"])  # fmt: skip
    if form == "full":
        g = v6_groups(r, r.choice(["middle", "random"]))
        return ":".join(f"{x:04x}" for x in g), "v6-full", "plain"
    if form == "nozeros":
        g = v6_groups(r, "middle")
        return ":".join(f"{x:x}" for x in g), "v6-nozeros-uncompressed", "plain"
    if form in ("middle", "upper", "bracket", "url"):
        a = str(ipaddress.IPv6Address(sum(x << (16 * (7 - i)) for i, x in enumerate(v6_groups(r, "middle")))))
        if form == "upper":
            return a.upper(), "v6-uppercase", "plain"
        return a, {"middle": "v6-compressed-middle", "bracket": "v6-bracket-port", "url": "v6-url"}[form], form
    if form == "end":
        a = str(ipaddress.IPv6Address(sum(x << (16 * (7 - i)) for i, x in enumerate(v6_groups(r, "end")))))
        return a, "v6-compressed-end", "plain"
    v4 = ipv4(r, private=r.random() < 0.3)
    if form == "mapped":
        return f"::ffff:{v4}", "v6-mapped-v4", "plain"
    if form == "nat64":
        return f"64:ff9b::{v4}", "v6-nat64-v4", "plain"
    if form == "start-hex":
        n = int(ipaddress.IPv4Address(v4))
        return f"::ffff:{n >> 16:x}:{n & 0xFFFF:x}", "v6-compressed-start", "plain"
    g = [0xFE80, 0, 0, 0] + v6_groups(r, "eui64")[4:]
    return str(ipaddress.IPv6Address(sum(x << (16 * (7 - i)) for i, x in enumerate(g)))), "v6-zone-eui64", "zone"


def api_key(r: random.Random) -> tuple[str, str]:
    return r.choice([
        ("AKIA" + tok(r, 16, string.ascii_uppercase + string.digits), "aws-access-key-id"),
        ("ghp_" + tok(r, 36), "github"), ("github_pat_11" + tok(r, 20, string.ascii_uppercase + string.digits) + "_" + tok(r, 59), "github"),
        ("gho_" + tok(r, 36), "github"),
        (f"xoxb-{digits(r, 12)}-{digits(r, 13)}-{tok(r, 24)}", "slack"), (f"xoxp-{digits(r, 12)}-{digits(r, 12)}-{digits(r, 13)}-{tok(r, 32, HEX)}", "slack"),
        ("sk_live_" + tok(r, 24), "stripe"), ("rk_live_" + tok(r, 24), "stripe"), ("sk_test_" + tok(r, 24), "stripe"),
        ("AIza" + tok(r, 35, ALNUM + "_-"), "google"), ("hf_" + tok(r, 34), "huggingface"),
        ("sk-proj-" + tok(r, 48, ALNUM + "_-"), "openai"), ("glpat-" + tok(r, 20, ALNUM + "_-"), "gitlab"),
        (jwt(r), "jwt"),
    ])  # fmt: skip


def jwt(r: random.Random) -> str:
    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=").decode()  # noqa: E731
    head = b64({"alg": r.choice(["HS256", "RS256"]), "typ": "JWT"})
    body = b64({"sub": digits(r, 10), "name": en_name(r), "iat": r.randint(1500000000, 1750000000)})
    return f"{head}.{body}.{tok(r, 43, ALNUM + '_-')}"


def generic_secret(r: random.Random) -> str:
    return r.choice([tok(r, 32, HEX), tok(r, r.randint(20, 40)), tok(r, 40, ALNUM + "+/"), tok(r, 24, ALNUM + "_-")])


def private_key(r: random.Random) -> str:
    kind = r.choice(["RSA ", "", "EC ", "OPENSSH ", "DSA "])
    n_lines = r.randint(3, 12)
    body = "\n".join(base64.b64encode(r.randbytes(48)).decode() for _ in range(n_lines))
    body += "\n" + base64.b64encode(r.randbytes(r.randint(3, 40))).decode()
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


# --- look-alike values ---------------------------------------------------------------------


def uuid(r: random.Random) -> str:
    return f"{tok(r, 8, HEX)}-{tok(r, 4, HEX)}-4{tok(r, 3, HEX)}-{r.choice('89ab')}{tok(r, 3, HEX)}-{tok(r, 12, HEX)}"


def mac(r: random.Random) -> str:
    b = [r.randint(0, 255) for _ in range(6)]
    return r.choice([":".join(f"{x:02x}" for x in b), ":".join(f"{x:02X}" for x in b), "-".join(f"{x:02x}" for x in b),
                     f"{b[0]:02x}{b[1]:02x}.{b[2]:02x}{b[3]:02x}.{b[4]:02x}{b[5]:02x}"])  # fmt: skip


def version4(r: random.Random) -> str:
    return f"{r.randint(1, 12)}.{r.randint(0, 20)}.{r.randint(0, 9)}.{r.randint(1, 30)}"


def isbn(r: random.Random) -> str:
    body = f"978{r.randint(0, 1)}{digits(r, 8)}"
    check = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body)) % 10) % 10
    d = body + str(check)
    return f"{d[:3]}-{d[3]}-{d[4:7]}-{d[7:12]}-{d[12]}"


def date_time(r: random.Random) -> str:
    y, mo, d, h, mi, s = r.randint(2005, 2025), r.randint(1, 12), r.randint(1, 28), r.randint(0, 23), r.randint(0, 59), r.randint(0, 59)
    return r.choice([f"{y}-{mo:02d}-{d:02d}", f"{mo:02d}/{d:02d}/{y}", f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
                     f"{h:02d}:{mi:02d}:{s:02d}", f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}", f"{d:02d}.{mo:02d}.{y}",
                     f"{y}年{mo}月{d}日"])  # fmt: skip


# --- frames --------------------------------------------------------------------------------


@dataclass
class V:
    """A slot value: PII (entity set) or a look-alike (entity None)."""

    value: str
    sub: str
    entity: str | None = None


def P(entity: str, sub: str, value: str) -> V:
    return V(value, sub, entity)


def L(sub: str, value: str) -> V:
    return V(value, sub)


Parts = list  # of str | V

_SLOT = re.compile(r"\{(\w+)\}")


def T(template: str, **slots: V | str | Parts) -> Parts:
    """The template's text with `{name}` slots filled (names not given stay literal, so C
    braces, `${VAR}` and `{{ jinja }}` need no escaping); a slot may hold several parts."""
    parts: Parts = []
    pos = 0
    for m in _SLOT.finditer(template):
        if m.group(1) not in slots:
            continue
        parts.append(template[pos : m.start()])
        value = slots[m.group(1)]
        parts.extend(value if isinstance(value, list) else [value])
        pos = m.end()
    parts.append(template[pos:])
    return [p for p in parts if p != ""]


REGISTERS = ("prose_en", "log", "cli", "prose_zh", "python", "perl", "shell", "c", "ini", "conf", "yaml", "env")
PII_FRAMES: dict[str, dict[str, list]] = {reg: {} for reg in REGISTERS}
LOOK_FRAMES: dict[str, list] = {reg: [] for reg in REGISTERS}


def add(entity: str | None, table: dict[str, list[str]], slots) -> None:
    """Templates per register (keys may name several registers, space-separated); `slots(r)`
    draws the slot values. `entity` None: look-alike frames."""
    for regs, templates in table.items():
        for reg in regs.split():
            fn = lambda r, t=templates: T(r.choice(for_part(t)), **slots(r))  # noqa: E731
            if entity is None:
                LOOK_FRAMES[reg].append(fn)
            else:
                PII_FRAMES[reg].setdefault(entity, []).append(fn)


def _ip4(r: random.Random, sub: str) -> V:
    priv = r.random() < 0.4
    return P("IP_ADDRESS", f"v4-{'private' if priv else 'public'}-{sub}", ipv4(r, priv))


def _v6(r: random.Random, wraps: tuple[str, ...] = ("plain",)) -> Parts:
    """An IPv6 PII value, wrapped as the form asks when `wraps` allows it (else redrawn)."""
    while True:
        value, sub, wrap = ipv6(r)
        if wrap in wraps:
            break
        if wrap in ("bracket", "url") and "plain" in wraps:  # the same compressed address, unwrapped
            wrap, sub = "plain", "v6-compressed-middle"
            break
    v = P("IP_ADDRESS", sub, value)
    if wrap == "bracket" and "bracket" in wraps:
        return T("[{v}]:{port}", v=v, port=str(r.choice([443, 8443, 22, 5432, 8080])))
    if wrap == "url" and "url" in wraps:
        return T("http://[{v}]:{port}/", v=v, port=str(r.choice([80, 8080, 9090])))
    if wrap == "zone":
        return T("{v}%{z}", v=v, z=r.choice(["eth0", "en0", "wlan0", "enp3s0"]))
    return [v]


def _name(r: random.Random, sub: str) -> V:
    return P("PERSON", f"en-{sub}", en_name(r))


def _zname(r: random.Random, sub: str) -> V:
    return P("PERSON", f"zh-{sub}", zh_name(r))


def _mail(r: random.Random, sub: str, name: str | None = None) -> V:
    return P("EMAIL", sub, email(r, name))


def _pw(r: random.Random, sub: str, safe: str = "!#%*_-.") -> V:
    return P("PASSWORD", sub, password(r, safe))


def _phone(r: random.Random, regions: tuple[str, ...] = ("us", "us", "intl")) -> V:
    value, sub = phone(r, r.choice(regions))
    return P("PHONE", sub, value)


def _card(r: random.Random) -> V:
    value, sub = card(r)
    return P("CREDIT_CARD", sub, value)


def _key(r: random.Random) -> V:
    value, sub = api_key(r)
    return P("API_KEY", sub, value)


def _user(r: random.Random) -> str:
    return r.choice(["app", "admin", "root", "deploy", "svc_backup", "jenkins", "webuser", "postgres", "etl", "report"])


def _host(r: random.Random) -> str:
    return r.choice(["db.internal", "db01.prod.acme-corp.com", "mysql.lan", "pg-primary", "localhost", "redis.cache.svc",
                     "mongo-0.mongo", "sql.initech.io"])  # fmt: skip


def _db(r: random.Random) -> str:
    return r.choice(["orders", "app", "billing", "analytics", "wiki", "crm", "prod"])


def _ts(r: random.Random) -> str:
    return f"{r.choice(['Jan', 'Mar', 'Jun', 'Oct', 'Dec'])} {r.randint(1, 28):2d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"


def _pid(r: random.Random) -> str:
    return str(r.randint(300, 40000))


QUOTED = "!#%*_-.@^&"  # symbols a password may hold inside quotes in code
URI = "!*_-.~"  # ... inside a URI's userinfo or query
UNQUOTED = "_-.%@!"  # ... unquoted in shell, env files, YAML, INI

# ---- IP_ADDRESS ----
add("IP_ADDRESS", {
    "prose_en": ["Server {a} and backup {b} were rebooted after the update.", "The server {a} stopped answering; host {b} took over.",
                 "Connect to host {a}, then run the installer.", "We moved the mirror to {a}.", "Clients behind {a} (the NAT gateway) were blocked.",
                 "Point the resolver at {a}:53 and retry.", "It listens on {a}:8080 by default on that box.", "Server {a}: disk full.",
                 "Our build host ({a}) was down for an hour.", "Requests from {a}, {b} and others were dropped."],
    "prose_zh": ["服务器 {a} 已经宕机，请切换到 {b}。", "请把网关设置为 {a}。", "来自 {a} 的请求被拒绝。", "主机 {a}:22 无法连接。", "数据库地址：{a}"],
}, lambda r: {"a": _ip4(r, "prose"), "b": _ip4(r, "prose")})  # fmt: skip
add("IP_ADDRESS", {
    "log conf shell": ["{ts} web01 sshd[{pid}]: Failed password for invalid user {u} from {a} port {port} ssh2",
                       '{a} - - [11/Oct/2023:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 {port} "-" "curl/7.88.1"',
                       "{ts} gw kernel: [UFW BLOCK] IN=eth0 OUT= SRC={a} DST={b} LEN=60 PROTO=TCP DPT=22",
                       "{ts} mx postfix/smtpd[{pid}]: connect from unknown[{a}]", "{ts} app[{pid}]: upstream {a}:8080 timed out"],
}, lambda r: {"a": _ip4(r, "log"), "b": _ip4(r, "log"), "ts": _ts(r), "pid": _pid(r), "u": _user(r), "port": str(r.randint(1024, 65535))})  # fmt: skip
add("IP_ADDRESS", {
    "prose_en": ["The host answers on {x} only.", "Server {x} and its twin were moved.", "Our mirror is reachable at {w}.",
                 "Ping {x}, then check the route.", "Traffic from {x} (the office) is allowed.", "Use {w} for the admin UI."],
    "prose_zh": ["服务器 {x} 无法访问。", "请使用 {w} 访问管理界面。"],
    "log": ["{ts} web01 sshd[{pid}]: Accepted publickey for {u} from {x} port 50522 ssh2", "64 bytes from {x}: icmp_seq=1 ttl=57 time=12.3 ms",
            "    inet6 {x}/64 scope global dynamic", "{ts} ntpd[{pid}]: Listen normally on 5 eth0 [{p}]:123"],
    "ini conf yaml env": ["listen [{p}]:443 ssl;", "nameserver {x}", "ListenAddress {x}", "allow {p};", "proxy_pass http://[{p}]:8080;"],
    "yaml": ["endpoint: \"{w}\"", "- {p}", "address: \"{p}\""],
    "env": ["UPSTREAM={w}", "DB_HOST={p}"],
    "python": ['HOST = "{p}"', "sock.connect(('{p}', 443, 0, 0))", 'BASE_URL = "{w}"', 'peers = ["{x}", "localhost"]'],
    "perl": ["my $host = '{p}';", "my $sock = IO::Socket::IP->new(PeerHost => '{p}', PeerPort => 443);"],
    "c": ['const char *peer = "{p}";', 'inet_pton(AF_INET6, "{p}", &sa.sin6_addr);'],
    "shell cli": ["ping -6 -c 3 {x}", "ssh {u}@{p}", "curl -g -s {w}", "ip -6 route add default via {x}"],
}, lambda r: {"x": _v6(r, ("plain", "zone")), "w": _v6(r, ("plain", "bracket", "url")), "p": _v6(r),
              "ts": _ts(r), "pid": _pid(r), "u": _user(r)})  # fmt: skip
add("IP_ADDRESS", {
    "ini conf": ["bind-address = {a}", "listen_addresses = '{a}'", "server {a}:6379 weight=5;", "nameserver {a}", "allow {a};",
                 "HostName {a}", "upstream_host={a}", "ListenAddress {a}"],
    "yaml": ["host: {a}", "server_ip: \"{a}\"", "- {a}", "endpoint: http://{a}:9200", "advertise_addr: {a}"],
    "env": ["DB_HOST={a}", "REDIS_HOST={a}", "API_URL=http://{a}:8000/v1"],
}, lambda r: {"a": _ip4(r, "config")})  # fmt: skip
add("IP_ADDRESS", {
    "python": ['HOST = "{a}"', "sock.connect(('{a}', 8080))", 'ALLOWED_HOSTS = ["{a}", "localhost"]', 'requests.get("http://{a}:5000/health", timeout=5)'],
    "perl": ["my $server = '{a}';", "my $sock = IO::Socket::INET->new(PeerAddr => '{a}', PeerPort => 25);"],
    "c": ['#define SERVER_ADDR "{a}"', 'inet_pton(AF_INET, "{a}", &addr.sin_addr);'],
    "shell cli": ["ssh {u}@{a}", "scp backup.tar.gz {u}@{a}:/srv/", "curl -s http://{a}:8080/status", "ping -c 3 {a}",
                  "iptables -A INPUT -s {a} -j DROP"],
}, lambda r: {"a": _ip4(r, "code"), "u": _user(r)})  # fmt: skip

# ---- EMAIL ----
add("EMAIL", {
    "prose_en": ["Send bug reports to {e}.", "Questions? Email {e} or open an issue.", "Contact: {e}", "Patches welcome at <{e}>.",
                 "Mail {e}, who maintains the Debian package.", "(reach me at mailto:{e})"],
    "prose_zh": ["邮箱：{e}", "请把简历发送到 {e}，注明应聘岗位。", "有问题请发邮件给{e}。"],
    "python": ['ADMINS = [("Ops", "{e}")]', 'msg["To"] = "{e}"', 'send_mail(subject, body, "{e}", [user.email])'],
    "perl": ["my $to = '{e}';", "$msg->add('To', '{e}');"],
    "c": ['#define BUG_REPORT_ADDRESS "{e}"'],
    "shell cli": ['git config --global user.email "{e}"', 'echo "$REPORT" | mail -s "nightly" {e}', "certbot --email {e} -d shop.acme-corp.com"],
    "ini conf": ["admin_email = {e}", "ServerAdmin {e}", "from_address={e}"],
    "yaml": ["email: {e}", "notify: \"{e}\""],
    "env": ["MAILTO={e}", "ADMIN_EMAIL={e}"],
    "log": ["{ts} mx postfix/smtp[{pid}]: 4B1C2: to=<{e}>, relay=mx.google.com, status=sent"],
}, lambda r: {"e": _mail(r, "plain"), "ts": _ts(r), "pid": _pid(r)})  # fmt: skip


def _name_mail(r: random.Random, sub: str) -> dict:
    n = en_name(r)
    return {"n": P("PERSON", f"en-{sub}", n), "e": _mail(r, "with-name", n), "y": str(r.randint(1995, 2024))}


add("EMAIL", {"prose_en": ["Written by {n} <{e}>.", "Maintainer: {n} <{e}>", "Signed-off-by: {n} <{e}>"]}, lambda r: _name_mail(r, "with-email"))
add("EMAIL", {
    "python": ['__author__ = "{n} <{e}>"', "# Author: {n} <{e}>"], "perl": ["=head1 AUTHOR\n\n{n} E<lt>{e}E<gt>\n\n=cut", "# Author: {n} <{e}>"],
    "shell": ["# Maintainer: {n} <{e}>"], "c": ["/* Copyright (C) {y} {n} <{e}> */", " * Author: {n} <{e}>"],
}, lambda r: _name_mail(r, "code-header"))  # fmt: skip

# ---- PHONE ----
add("PHONE", {
    "prose_en": ["Call us at {p}.", "Phone: {p}", "For urgent issues ring {p} (24/7).", "Fax {p}, phone {q}.", "You can text {p} after hours."],
}, lambda r: {"p": _phone(r), "q": _phone(r)})  # fmt: skip
add("PHONE", {
    "python": ['phone = "{p}"', '"mobile": "{p}",'], "perl": ["my $phone = '{p}';"], "c": ['#define SUPPORT_PHONE "{p}"'],
    "yaml": ["phone: {p}", "mobile: \"{p}\""], "ini conf": ["phone = {p}", "TEL;TYPE=cell:{p}"], "env": ["SUPPORT_PHONE={p}"],
}, lambda r: {"p": _phone(r, ("us", "intl", "cn"))})  # fmt: skip
add("PHONE", {
    "prose_zh": ["电话：{p}", "手机号 {p}，请保持畅通。", "如有问题请拨打{p}联系客服。", "联系电话：{p}（工作日）", "座机：{l}"],
}, lambda r: {"p": _phone(r, ("cn",)), "l": _phone(r, ("cn-landline",))})  # fmt: skip

# ---- CREDIT_CARD ----
add("CREDIT_CARD", {
    "prose_en": ["Charge it to card {c}, exp 09/27.", "Card number: {c}", "The payment with {c} was declined.", "Refund the order to {c} please."],
    "prose_zh": ["银行卡号：{c}", "请将款项退回到卡号 {c} 的账户。"],
    "python": ['card_number = "{c}"', '"pan": "{c}",'], "perl": ["my $cc = '{c}';"], "yaml": ["cc_number: {c}", "card: \"{c}\""],
    "ini conf env": ["CARD={c}", "test_card = {c}"],
    "log": ["2023-10-11 12:00:03 ERROR payment declined for card {c} (insufficient funds)"],
}, lambda r: {"c": _card(r)})  # fmt: skip

# ---- CN_ID ----
add("CN_ID", {"prose_zh": ["身份证号：{i}", "公民身份号码 {i}", "请核对身份证号码（{i}）是否正确。", "证件号:{i}"]},
    lambda r: {"i": P("CN_ID", "zh-prose", cn_id(r))})  # fmt: skip
add("CN_ID", {"python": ['id_card = "{i}"'], "yaml": ["id_number: {i}"], "prose_en": ["Chinese ID {i} was verified."], "env ini": ["CITIZEN_ID={i}"]},
    lambda r: {"i": P("CN_ID", "code-or-en", cn_id(r))})  # fmt: skip

# ---- US_SSN ----
add("US_SSN", {
    "prose_en": ["SSN: {s}", "Her Social Security number is {s}.", "Employee SSN {s} was on the W-2."],
    "python": ['ssn = "{s}"'], "perl": ["my $ssn = '{s}';"], "yaml": ["ssn: {s}"], "ini env": ["SSN={s}"], "log": ["Doe,Jane,{s},1984-03-02"],
}, lambda r: {"s": P("US_SSN", "dashed", ssn(r))})  # fmt: skip
add("US_SSN", {"prose_en": ["SSN {s} (no dashes) came from the form."], "yaml": ["ssn: {s}"]},
    lambda r: {"s": P("US_SSN", "no-dashes", ssn(r).replace("-", ""))})  # fmt: skip

# ---- API_KEY ----
add("API_KEY", {
    "python": ['openai.api_key = "{k}"', 'client = Client(token="{k}")', 'headers = {"Authorization": "Bearer {k}"}', 'AWS_ACCESS_KEY_ID = "{k}"',
               'GITHUB_TOKEN = "{k}"', 'stripe.api_key = "{k}"'],
    "perl": ["my $token = '{k}';", "$ua->default_header(Authorization => 'Bearer {k}');"],
    "c": ['#define SLACK_TOKEN "{k}"'],
    "env shell": ["export GITHUB_TOKEN={k}", "AWS_ACCESS_KEY_ID={k}", "SLACK_BOT_TOKEN={k}", "export HF_TOKEN={k}", "STRIPE_KEY={k}"],
    "shell cli": ['curl -H "Authorization: Bearer {k}" https://api.acme-corp.com/v1/me', 'curl -H "Authorization: token {k}" https://api.github.com/user',
                  "curl -u {k}: https://api.stripe.com/v1/charges"],
    "yaml": ["slack_token: {k}", "api_key: \"{k}\"", "token: {k}", "  GITHUB_TOKEN: {k}"],
    "ini conf": ["token = {k}", "aws_access_key_id = {k}"],
    "prose_en": ["I accidentally pushed the key {k} yesterday, please rotate it.", "Use the token {k} for the staging bot."],
    "prose_zh": ["接口密钥：{k}", "请使用令牌 {k} 访问测试环境。"],
}, lambda r: {"k": _key(r)})  # fmt: skip
add("API_KEY", {
    "python": ['api_key = "{g}"', 'SECRET_KEY = "{g}"'], "perl": ["my $api_key = '{g}';"], "c": ['#define API_KEY "{g}"'],
    "env ini conf": ["aws_secret_access_key = {g}", "API_KEY={g}", "secret_key = {g}", "SECRET_KEY_BASE={g}"],
    "shell cli": ['curl "https://api.acme-corp.com/v2/search?q=x&api_key={g}"', 'curl -H "X-API-Key: {g}" https://api.acme-corp.com/v1/items'],
    "yaml": ["client_secret: {g}", "secret_key: \"{g}\""],
}, lambda r: {"g": P("API_KEY", "generic-assign", generic_secret(r))})  # fmt: skip

# ---- PASSWORD ----
_pwslots = lambda sub, safe: (lambda r: {"u": _user(r), "h": _host(r), "d": _db(r), "p": _pw(r, sub, safe)})  # noqa: E731
add("PASSWORD", {"perl": ["my $dbh = DBI->connect($dsn, '{u}', '{p}', { RaiseError => 1 });",
                          "my $dbh = DBI->connect(\"dbi:Pg:dbname={d};host={h}\", '{u}', '{p}');",
                          "$dbh = DBI->connect($dsn, $user, '{p}') or die $DBI::errstr;"]}, _pwslots("dbi-connect", QUOTED))  # fmt: skip
add("PASSWORD", {"perl": ["my $password = '{p}';", "my %db = (user => '{u}', password => '{p}');", "$ftp->login('{u}', '{p}') or die;"]},
    _pwslots("perl-assign-or-login", QUOTED))  # fmt: skip
add("PASSWORD", {"python": ["conn = psycopg2.connect(host='{h}', dbname='{d}', user='{u}', password='{p}')",
                            "conn = psycopg2.connect(host=\"{h}\", user=\"{u}\", password=\"{p}\", port=5432)"]}, _pwslots("psycopg2-kw", QUOTED))  # fmt: skip
add("PASSWORD", {"python": ["db = pymysql.connect(host='{h}', user='{u}', passwd='{p}', db='{d}')"]}, _pwslots("pymysql-passwd", QUOTED))
add("PASSWORD", {"python": ["resp = requests.get(url, auth=('{u}', '{p}'))", "r = requests.post(API, json=payload, auth=(\"{u}\", \"{p}\"))"]},
    _pwslots("requests-auth-tuple", QUOTED))  # fmt: skip
add("PASSWORD", {"python": ["session.auth = HTTPBasicAuth('{u}', '{p}')"]}, _pwslots("httpbasicauth", QUOTED))
add("PASSWORD", {"python": ['DB_PASSWORD = "{p}"', "smtp.login('{u}@acme-corp.com', '{p}')", "    'PASSWORD': '{p}',"]},
    _pwslots("python-assign-or-login", QUOTED))  # fmt: skip
add("PASSWORD", {"c": ['mysql_real_connect(conn, "{h}", "{u}", "{p}", "{d}", 0, NULL, 0);', '#define DB_PASSWORD "{p}"',
                       'static const char *password = "{p}";']}, _pwslots("c-code", QUOTED))  # fmt: skip
add("PASSWORD", {
    "python": ['DATABASE_URL = "postgresql://{u}:{p}@{h}:5432/{d}"', "client = MongoClient('mongodb://{u}:{p}@{h}:27017/')",
               'r = redis.from_url("redis://:{p}@{h}:6379/0")', "engine = create_engine('mysql+pymysql://{u}:{p}@{h}/{d}')"],
    "shell cli ini conf yaml env": ["mongodb://{u}:{p}@{h}:27017/{d}?authSource=admin", "MONGO_URL=mongodb+srv://{u}:{p}@cluster0.ab1cd.mongodb.net/{d}",
                                    "redis://:{p}@{h}:6379/0", "REDIS_URL=redis://default:{p}@{h}:6379", "amqp://{u}:{p}@{h}:5672/",
                                    "postgres://{u}:{p}@{h}/{d}?sslmode=require"],
}, _pwslots("uri-userinfo", URI))  # fmt: skip
add("PASSWORD", {"shell cli ini conf yaml env python": ["jdbc:postgresql://{h}:5432/{d}?user={u}&password={p}",
                                                        "jdbc:mysql://{h}:3306/{d}?user={u}&password={p}&useSSL=false"]},
    _pwslots("jdbc-query", URI))  # fmt: skip
add("PASSWORD", {"shell cli": ["mysql -u root -p{p} {d} < dump.sql", "mysqldump -u{u} -p{p} --single-transaction {d} > {d}.sql"]},
    _pwslots("mysql-p-flag", "_-.%"))  # fmt: skip
add("PASSWORD", {"shell cli": ["PGPASSWORD={p} psql -h {h} -U {u} {d}", "PGPASSWORD='{p}' pg_dump -h {h} -U {u} {d} > {d}.sql"]},
    _pwslots("pgpassword-env", "_-.%"))  # fmt: skip
add("PASSWORD", {"shell cli": ["./manage.sh --user {u} --password {p} --db {d}", "docker login -u {u} --password {p} registry.acme-corp.com",
                               "mysqladmin --user={u} --password {p} status"]}, _pwslots("cli-password-space", "_-.%@"))  # fmt: skip
add("PASSWORD", {"shell cli": ["backup-tool --password={p} --target s3://backups/{d}", "mysql --user={u} --password={p} {d}",
                               "vault login -method=userpass username={u} password={p}"]}, _pwslots("cli-password-eq", "_-.%@"))  # fmt: skip
add("PASSWORD", {"shell cli": ["docker run -d -e MYSQL_ROOT_PASSWORD={p} mysql:8", "sshpass -p '{p}' ssh {u}@{h}",
                               "curl -u {u}:{p} https://ci.acme-corp.com/api/json", "echo '{p}' | sudo -S systemctl restart nginx"]},
    _pwslots("cli-other", "_-.%"))  # fmt: skip
add("PASSWORD", {"env shell conf": ["DB_PASSWORD={p}", "MYSQL_ROOT_PASSWORD={p}", "POSTGRES_PASSWORD={p}", "export SMTP_PASS={p}", "ADMIN_PASS={p}"]},
    _pwslots("env-file", UNQUOTED))  # fmt: skip
add("PASSWORD", {"yaml": ["  password: {p}", "  POSTGRES_PASSWORD: {p}", "password: \"{p}\"", "    db_password: '{p}'"]}, _pwslots("yaml", UNQUOTED))
add("PASSWORD", {"ini conf": ["password = \"{p}\"", "db_password = '{p}'"]}, _pwslots("toml-quoted", UNQUOTED + "#*"))
add("PASSWORD", {"ini conf": ["password={p}", "password = {p}", "passwd = {p}", "smtp_pass={p}"]}, _pwslots("ini", UNQUOTED + "*"))
add("PASSWORD", {"conf": ["requirepass {p}", "masterauth {p}", "machine ftp.acme-corp.com login {u} password {p}", "auth_pass {p}"]},
    _pwslots("conf-directive", UNQUOTED + "*"))  # fmt: skip
add("PASSWORD", {"prose_en": ["The root password is {p} until we rotate it.", "Log in with admin / {p} and change it.", "Password: {p}",
                              "The Wi-Fi password is {p}."]}, _pwslots("prose", "!#%*_-.@"))  # fmt: skip
add("PASSWORD", {"prose_zh": ["密码：{p}", "初始密码为 {p}，登录后请立即修改。", "用户名 admin，口令 {p}"]}, _pwslots("zh-prose", "!#%*_-.@"))
add("PASSWORD", {"log": ["DEBUG connecting with dsn=host={h} user={u} password={p} dbname={d}"]}, _pwslots("log-dsn", UNQUOTED + "*"))

# ---- PRIVATE_KEY ----
add("PRIVATE_KEY", {"prose_en cli": ["{k}"]}, lambda r: {"k": P("PRIVATE_KEY", "pem-block", private_key(r))})
add("PRIVATE_KEY", {"python": ['PRIVATE_KEY = """{k}"""']}, lambda r: {"k": P("PRIVATE_KEY", "python-string", private_key(r))})
add("PRIVATE_KEY", {"shell": ["cat > ~/.ssh/id_rsa <<'EOF'\n{k}\nEOF"]}, lambda r: {"k": P("PRIVATE_KEY", "heredoc", private_key(r))})
add("PRIVATE_KEY", {"yaml": ["tls_key: |\n  {k}"]}, lambda r: {"k": P("PRIVATE_KEY", "yaml-block", private_key(r).replace("\n", "\n  "))})
add("PRIVATE_KEY", {"env ini conf": ['PRIVATE_KEY="{k}"']},
    lambda r: {"k": P("PRIVATE_KEY", "escaped-one-line", private_key(r).replace("\n", "\\n"))})  # fmt: skip

# ---- PERSON ----
add("PERSON", {"prose_en": [
    "Reported by {n}.", "Copyright {y} {n}", "Contact {n} for access to the staging cluster.", "Thanks to {n} for the patch.",
    "Written by {n} and {m}.", "As {n} pointed out on the mailing list, the default changed.", "Maintainer: {n}",
    "Patch from {n} (bug #{b}).", "{n} wrote:", "Original code by {n}; ported by {m}.", "Dear {n},", "-- {n}, {y}",
    "cc: {n}, {m}", "Approved-by: {n}", "Please ask {n} before merging.", "The release was signed by {n}.",
    "Many thanks to {n}, who tested it on ARM.", "Author: {n}",
]}, lambda r: {"n": _name(r, "prose"), "m": _name(r, "prose"), "y": str(r.randint(1995, 2024)), "b": str(r.randint(100, 99999))})  # fmt: skip
add("PERSON", {
    "python": ["# Copyright (c) {y} {n}", '__author__ = "{n}"', "# TODO: ask {n} about the retry logic", "# Contributors: {n}, {m}"],
    "perl": ["=head1 AUTHOR\n\n{n}\n\n=cut", "# Copyright (c) {y} {n}"], "shell": ["# Written by {n}, {y}.", "# Reviewed-by: {n}"],
    "c": ["/* Written by {n}, {y}. */", " * Copyright (c) {y} {n}"],
    "yaml": ["maintainer: {n}", "# Contact: {n}"], "ini conf": ["# Contact: {n}", "owner = \"{n}\"", "authors = [\"{n}\"]", "# managed by {n}"],
}, lambda r: {"n": _name(r, "code-or-config"), "m": _name(r, "code-or-config"), "y": str(r.randint(1995, 2024))})  # fmt: skip
add("PERSON", {"prose_zh": [
    "联系人：{n}", "由{n}提交。", "{n}说，这个问题会在下个版本修复。", "感谢{n}的反馈。", "负责人：{n}", "报告人：{n}，日期：2023年5月12日",
    "{n}和{m}参加了会议。", "如有疑问请联系{n}老师。", "经理{n}批准了该申请。", "翻译：{n}", "审核：{n}", "作者：{n}",
    "{n}同学已经完成了测试。", "本补丁由{n}编写，{m}审阅。",
]}, lambda r: {"n": _zname(r, "prose"), "m": _zname(r, "prose")})  # fmt: skip

# --- look-alike frames ---------------------------------------------------------------------

add(None, {"prose_en cli log": ["Upgrade to version {v} or later.", "Fixed in v{v}.", "Tested with libfoo {v} on Debian.",
                                "Build {v} is the last one for i386."]}, lambda r: {"v": L("version-4part", version4(r))})  # fmt: skip
add(None, {
    "prose_en": ["It binds to {v} by default.", "The default netmask is {m}."], "prose_zh": ["地址 {v} 仅用于测试。"],
    "log": ["{ts} app[{pid}]: listening on {v}:8080"], "python": ['HOST = "{v}"', "app.run(host='{v}', port=5000)"],
    "perl": ["my $host = '{v}';"], "c": ['#define LISTEN_ADDR "{v}"'], "shell": ["curl -s http://{v}:8080/health"],
    "yaml": ["host: {v}", "netmask: {m}"], "ini conf": ["bind = {v}", "netmask {m}"], "env": ["HOST={v}"],
}, lambda r: {"v": L("v4-not-personal", r.choice(["127.0.0.1", "0.0.0.0", f"192.0.2.{r.randint(1, 254)}", f"198.51.100.{r.randint(1, 254)}",
                                                  f"203.0.113.{r.randint(1, 254)}", "224.0.0.251", "255.255.255.255"])),
              "m": L("v4-not-personal", r.choice(["255.255.255.0", "255.255.0.0", "255.255.255.128"])), "ts": _ts(r), "pid": _pid(r)})  # fmt: skip
add(None, {
    "prose_en": ["It listens on {v} too.", "See {v} in RFC 3849."], "log": ["{ts} app[{pid}]: listening on [{v}]:80"],
    "python": ['ADDR = "{v}"'], "perl": ["my $addr = '{v}';"], "c": ['#define LOOPBACK6 "{v}"'], "shell": ["ping -6 -c 1 {v}"],
    "yaml": ["address: \"{v}\""], "ini conf": ["listen [{v}]:80;", "bind {v}"], "env": ["BIND={v}"],
}, lambda r: {"v": L("v6-not-personal", r.choice(["::1", "::", "fe80::1", "2001:db8::1", f"2001:db8:{r.randint(1, 0xFFFF):x}::{r.randint(1, 0xFFFF):x}",
                                                  "ff02::1", "::ffff:127.0.0.1", "fe80::1%eth0"])), "ts": _ts(r), "pid": _pid(r)})  # fmt: skip
add(None, {
    "prose_en": ["Use std::vector<std::string> for the list.", "See {m} and std::map.", "The {m} module is loaded lazily."],
    "perl": ["use {m};", "my $obj = {m}->new(%args);"], "c": ["std::vector<int> v; // {m} style"], "python": ["# ported from {m}"],
    "log": ["{ts} perl[{pid}]: Can't locate {m} in @INC"],
}, lambda r: {"m": L("double-colon-name", r.choice(["Data::Dumper", "File::Spec::Functions", "IO::Socket::INET", "std::unordered_map",
                                                    "Foo::Bar::Baz", "Net::DNS::Resolver", "boost::asio::ip", "Test::More"])),
              "ts": _ts(r), "pid": _pid(r)})  # fmt: skip
add(None, {"prose_en": ["The NIC has MAC {m}."], "shell conf": ["hwaddress ether {m}"], "log": ["    link/ether {m} brd ff:ff:ff:ff:ff:ff"],
           "yaml": ["mac: \"{m}\""]}, lambda r: {"m": L("mac", mac(r))})  # fmt: skip
add(None, {
    "prose_en": ["Commit {s} fixed it.", "Request {u} failed."], "prose_zh": ["提交 {s} 修复了该问题。"], "python": ['id = "{u}"', "# fixed in {s}"],
    "shell": ["git checkout {s}"], "yaml": ["revision: {s}", "uid: {u}"], "ini conf": ["uuid = {u}"], "log": ["{ts} worker: request {u} failed"],
    "perl": ["# sha: {s}"], "c": ["/* upstream commit {s} */"],
}, lambda r: {"s": L("git-sha", tok(r, r.choice([7, 12, 40]), HEX)), "u": L("uuid", uuid(r)), "ts": _ts(r)})  # fmt: skip
add(None, {"prose_en": ["Released on {d}."], "log": ["at {d} the job restarted"], "prose_zh": ["发布日期：{d}"], "python": ['since = "{d}"'],
           "yaml": ["last_modified: {d}"]}, lambda r: {"d": L("date-time", date_time(r))})  # fmt: skip
add(None, {"prose_en log c": ["{h}  ................", "  fault at {p}"]},
    lambda r: {"h": L("hex-dump", f"{r.randint(0, 0xFFFF) * 16:08x}: " + " ".join(tok(r, 4, HEX) for _ in range(8))),
               "p": L("pointer", "0x" + tok(r, 12, HEX))})  # fmt: skip
add(None, {"prose_en": ["ISBN {i}", "Order #{o} shipped.", "Invoice {o} is attached."], "prose_zh": ["订单号：{c}"], "yaml": ["isbn: {i}", "tracking: {b}"],
           "python": ['ORDER_ID = "{c}"']},
    lambda r: {"i": L("isbn", isbn(r)), "o": L("order-number", f"{digits(r, 3)}-{digits(r, 7)}-{digits(r, 7)}"),
               "c": L("cn-order-18", cn_id(r, valid=False)), "b": L("luhn-invalid-16", bad_luhn(r))})  # fmt: skip
add(None, {"prose_en c log": ["Test vector: {b}", "checksum {b} mismatched", "    {t}", "TOTAL {t}"], "python": ["# {t}", 'vec = "{b}"']},
    lambda r: {"b": L("luhn-invalid-16", bad_luhn(r)),
               "t": L("number-row", "  ".join(str(r.choice([r.randint(0, 99999), 2 ** r.randint(4, 20)])) for _ in range(r.randint(4, 7))))})  # fmt: skip
PLACEHOLDER_SECRETS = {
    "python": ['password = "changeme"', 'password=os.environ["DB_PASSWORD"]', 'api_key = os.getenv("API_KEY")', "password = getpass.getpass()"],
    "yaml": ["password: ${DB_PASS}", "password: <your password>", "token: {{ vault_token }}"],
    "env": ["DB_PASSWORD=$PASSWORD", "API_TOKEN=${API_TOKEN}"], "conf": ["PasswordAuthentication no", "passwd:         files systemd"],
    "ini": ["password = changeme", "password = %(db_password)s"], "shell": ['mysql -u root -p"$MYSQL_PWD"', "--password-file /run/secrets/db"],
    "perl": ["my $pass = $ENV{DB_PASS};"],
}  # fmt: skip
for _reg, _lines in PLACEHOLDER_SECRETS.items():  # the whole line is the look-alike
    add(None, {_reg: ["{x}"]}, lambda r, lines=_lines: {"x": L("placeholder-secret", r.choice(lines))})
add(None, {"prose_en": ["Install it on {p} and reboot.", "We moved from {p} to PostgreSQL.", "The team in {c} runs the mirror.",
                        "It was tested on {p} in {c}.", "The {s} sends a HELLO first."]},
    lambda r: {"p": L("product-name", r.choice(["Ubuntu Server", "Windows Server 2019", "SQL Server", "Red Hat Enterprise Linux",
                                                "Visual Studio Code", "Google Chrome", "Amazon Web Services", "Apache Tomcat", "Raspberry Pi OS"])),
               "c": L("place-name", r.choice(["San Francisco", "New York", "Berlin", "Tokyo", "Shenzhen", "São Paulo", "Cape Town", "Lake Tahoe"])),
               "s": L("word-server", "Server")})  # fmt: skip
add(None, {"prose_zh": ["这个{w}很常用。", "请{w}检查配置。", "{w}不受影响。", "使用该{w}时请注意。"]},
    lambda r: {"w": L("zh-surname-initial-word", r.choice(["方法", "周末", "马上", "高速", "黄金", "安全", "王国", "李子", "张开", "白色", "金额",
                                                           "石头", "程序"]))})  # fmt: skip
add(None, {"prose_en": ["Requires Python {p} or later."], "python": ['"version": "{v}",', "# requires numpy>={v}"], "shell": ["pip install requests=={v}"]},
    lambda r: {"v": L("version-3part", f"{r.randint(0, 9)}.{r.randint(0, 40)}.{r.randint(0, 20)}"),
               "p": L("version-3part", f"3.{r.randint(8, 13)}.{r.randint(0, 12)}")})  # fmt: skip


# --- contexts ------------------------------------------------------------------------------

ORG_WORDS = set("""inc inc. ltd ltd. llc gmbh corporation corp corp. foundation association project team developers contributors
authors software systems group company university institute consortium technologies labs laboratories limited public
interest free debian google microsoft oracle apple ibm red hat canonical mozilla apache python netscape sun microsystems
regents trust board community others holders holder copyright networks research center centre society unicode open source
packaging translators the and of for in gnu linux kernel x consortium ag sa bv ab ltda oy co co. engineering technology
organization organisation hgskolan högskolan tekniska council agency committee unlimited enterprises solutions services media digital studio studios
foundry""".split())  # noqa: SIM905  # fmt: skip
_UP = r"[A-ZÀ-ÖØ-ÞŁŠŽČŘ]"
_NAME = rf"{_UP}[\w'’-]*\.?(?:\s+(?:{_UP}[\w'’-]*\.?|van|von|de|der|den|da|del|della|di|du|la|le|dos|bin)){{1,3}}"
_COPY_LINE = re.compile(rf"^(?P<lead>(?:Copyright:?[ \t]*|[ \t]+)(?:(?:\([Cc]\)|©)[ \t]*)?(?:\d{{4}}(?:[ \t]*[-–,][ \t]*\d{{4}})*,?[ \t]+)?(?:by[ \t]+)?)"
                        rf"(?P<name>{_NAME})(?:[ \t]*<(?P<email>[^<>\s@]+@[^<>\s@]+\.[A-Za-z]{{2,}})>)?[ \t]*[.,]?[ \t]*$", re.M)  # fmt: skip


def harvest_copyright(text: str) -> list[tuple[str, str, int, int, str]]:
    """Real names (and their emails) in Debian copyright lines, where the format marks them:
    `Copyright: YEARS Name <email>` and the field's continuation lines, and `Copyright (C)
    YEAR Name` lines. Organisation-looking names are skipped."""
    out = []
    in_field = False
    pos = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if re.match(r"^[A-Za-z-]+:", stripped):
            in_field = stripped.lower().startswith("copyright:")
        elif stripped and not stripped[0].isspace():
            in_field = False
        m = _COPY_LINE.match(stripped)
        is_copy = m is not None and (m.group("lead").lower().startswith("copyright") or (in_field and stripped[:1].isspace()))
        if m and is_copy and m.group("lead").strip() and (re.search(r"\d{4}", m.group("lead")) or m.group("email") or "opyright" in m.group("lead")):
            name = m.group("name")
            if name.endswith(".") and len(name.split()[-1]) > 2:
                name = name[:-1]  # the sentence's full stop, not an initial
            words = name.replace(".", " ").split()
            if (2 <= len(name.split()) <= 4 and not any(w.lower().strip(",") in ORG_WORDS for w in words)
                    and not any(w.isupper() and len(w) > 2 for w in words) and not any(c.isdigit() for c in name)):  # fmt: skip
                out.append(("PERSON", name, pos + m.start("name"), pos + m.start("name") + len(name), "en-copyright-real"))
                if m.group("email"):
                    out.append(("EMAIL", m.group("email"), pos + m.start("email"), pos + m.end("email"), "copyright-real"))
        pos += len(line)
    return out


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")


def read_text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    if b"\0" in data[:4096]:
        return None
    text = data.decode("utf-8", errors="replace")
    if text.count("\ufffd") > 5:
        return None
    return normalize(text)


def render_man(path: Path) -> str | None:
    try:
        out = subprocess.run(f"man -l {path} 2>/dev/null | col -bx", shell=True, capture_output=True, timeout=30,
                             env={**os.environ, "MANWIDTH": "80", "LANG": "C.UTF-8", "MAN_KEEP_FORMATTING": ""})  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    text = out.stdout.decode("utf-8", errors="replace")
    return normalize(text) if len(text) > 400 else None


def read_mo(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 (a malformed catalog: skip the file)
        return None
    lines = [normalize(v) for k, v in catalog.items() if k and v and re.search(r"[\u4e00-\u9fff]", v) and len(v) >= 6]
    return "\n".join(lines) if lines else None


def _files(roots: list[str], patterns: list[str], min_size: int = 300, max_size: int = 2_000_000) -> list[Path]:
    out: set[Path] = set()
    for root in roots:
        for pat in patterns:
            for p in Path(root).glob(pat):
                try:
                    if p.is_file() and not p.is_symlink() and min_size <= p.stat().st_size <= max_size and os.access(p, os.R_OK):
                        out.add(p)
                except OSError:
                    pass
    return sorted(out)


@dataclass
class Pool:
    kind: str
    lang: str
    fmt: str
    register: str
    weight: float
    paths: list[Path]
    loader: str = "text"


def pools(rng: random.Random, man_pages: int) -> list[Pool]:
    man = _files(["/usr/share/man"], ["man1/*.gz", "man5/*.gz", "man8/*.gz"], 1500)
    gcloud = [p for p in man if p.name.startswith("gcloud")]  # most of man1 here: a small share
    other = [p for p in man if not p.name.startswith("gcloud")]
    n_gcloud = min(len(gcloud), man_pages // 8)
    man = sorted(rng.sample(other, min(man_pages - n_gcloud, len(other))) + rng.sample(gcloud, n_gcloud))
    c_files = _files(["/usr/share/doc"], ["**/*.c"]) + _files(["/usr/include"], ["*.h", "*/*.h"], 2000)
    return [
        Pool("en_prose", "en", "readme", "prose_en", 0.14, _files(["/usr/share/doc"], ["*/README*"], 400)),
        Pool("en_prose", "en", "man", "prose_en", 0.14, man, "man"),
        Pool("zh_prose", "zh", "mo", "prose_zh", 0.14, _files(["/usr/share/locale/zh_CN/LC_MESSAGES"], ["*.mo"], 2000), "mo"),
        Pool("code", "en", "python", "python", 0.12, _files([str(SITE)], ["**/*.py"], 2000, 400_000)),
        Pool("code", "en", "perl", "perl", 0.06, _files(["/usr/share/perl", "/usr/share/perl5"], ["**/*.pm"], 2000)),
        Pool("code", "en", "shell", "shell", 0.06, _files(["/usr/share", "/usr/lib", "/etc"], ["**/*.sh"], 800) + _files(["/etc/init.d"], ["*"], 800)),
        Pool("code", "en", "c", "c", 0.06, c_files),
        Pool("config", "en", "conf", "conf", 0.07, _files(["/etc"], ["*.conf", "*/*.conf", "*/*/*.conf"], 300)),
        Pool("config", "en", "yaml", "yaml", 0.05, _files([str(SITE), "/usr/share", "/etc"], ["**/*.yaml", "**/*.yml"], 300)),
        Pool("config", "en", "ini", "ini", 0.04, _files([str(SITE), "/usr/share", "/etc"], ["**/*.ini", "**/*.cfg", "**/*.toml"], 300)),
        Pool("config", "en", "env", "env", 0.04, _files(["/etc/default"], ["*"], 100) + _files(["/etc", "/usr/lib"], ["os-release", "environment", "adduser.conf"], 100)),
        Pool("copyright", "en", "debian-copyright", "copyright", 0.08, _files(["/usr/share/doc"], ["*/copyright"], 300)),
    ]  # fmt: skip


# --- documents -----------------------------------------------------------------------------


@dataclass
class Doc:
    id: str
    text: str
    kind: str
    lang: str
    fmt: str
    source: str
    pii: list = field(default_factory=list)
    lookalikes: list = field(default_factory=list)
    natural: list = field(default_factory=list)


def split_of(source: str) -> str:
    return "tune" if int(hashlib.sha1(source.encode()).hexdigest(), 16) % 10 < 7 else "heldout"


def cut(text: str, r: random.Random, target: int, around: int | None = None) -> tuple[str, int]:
    """A window of whole lines of about `target` characters (and its start offset)."""
    starts = [0] + [m.end() for m in re.finditer("\n", text) if m.end() < len(text)]
    if around is not None:
        cands = [s for s in starts if around - target + 40 <= s <= around]
        start = r.choice(cands) if cands else max(s for s in starts if s <= around)
    else:
        limit = max(0, len(text) - target)
        cands = [s for s in starts if s <= limit] or [0]
        start = r.choice(cands)
    end = start + target
    if end >= len(text):
        end = len(text)
    else:
        nl = text.rfind("\n", start, end)
        end = nl + 1 if nl > start + target // 2 else end
        if end == start + target:  # one very long line: cut at a space
            sp = text.rfind(" ", start, end)
            end = sp + 1 if sp > start else end
    return text[start:end], start


def _indent_at(ctx: str, pos: int) -> str:
    m = re.match(r"[ \t]*", ctx[pos:])
    return m.group(0) if m and pos < len(ctx) and ctx[pos:pos + len(m.group(0)) + 1].strip() else ""


def sentence_like(parts: list[str | V]) -> bool:
    text = "".join(p if isinstance(p, str) else p.value for p in parts)
    return ("\n" not in text and re.match(r"[A-Z\u4e00-\u9fff]", text) is not None and text[-1] in ".。）)"
            and not re.search(r"[=;{}<>\[\]]", text))  # fmt: skip


def insertion_points(ctx: str, register: str, r: random.Random, sentence: bool = False) -> int:
    """Where a snippet goes: a line start (code, config, logs) or, for a sentence in prose,
    also right after a sentence end."""
    line_starts = [0] + [m.end() for m in re.finditer("\n", ctx)]
    if sentence and register in ("prose_en", "prose_zh") and r.random() < 0.5:
        ends = [m.end() for m in re.finditer(r"(?<=[a-z)])\. (?=[A-Z])|。", ctx)]
        if ends:
            return r.choice(ends)
    return r.choice(line_starts)


def assemble(ctx: str, inserts: list[tuple[int, list[str | V]]], register: str) -> tuple[str, list, list]:
    """Insert snippets (sorted by position) into the context; returns text and spans."""
    out, pii, looks = [], [], []
    pos = 0
    length = 0
    for at, parts in sorted(inserts, key=lambda x: x[0]):
        out.append(ctx[pos:at])
        length += at - pos
        pos = at
        line_start = at == 0 or ctx[at - 1] == "\n"
        if line_start:
            indent = _indent_at(ctx, at) if register not in ("prose_zh",) else ""
            prefix, suffix = indent, "\n"
        else:  # mid-paragraph after a sentence end
            prefix, suffix = "", (" " if register == "prose_en" else "")
        pieces: list[str | V] = [prefix]
        for p in parts:
            if isinstance(p, str) and "\n" in p and line_start:
                p = p.replace("\n", "\n" + prefix) if prefix else p
            pieces.append(p)
        pieces.append(suffix)
        for p in pieces:
            if isinstance(p, V):
                value = p.value
                if p.entity == "PRIVATE_KEY" and line_start and prefix and "\n" in value:
                    value = value.replace("\n", "\n" + prefix)
                start = length
                out.append(value)
                length += len(value)
                if p.entity is None:
                    looks.append([value, start, length, p.sub])
                else:
                    pii.append([p.entity, value, start, length, p.sub])
            else:
                out.append(p)
                length += len(p)
    out.append(ctx[pos:])
    return "".join(out), pii, looks


ENTITY_WEIGHTS = {"IP_ADDRESS": 22, "PASSWORD": 22, "API_KEY": 12, "EMAIL": 10, "PHONE": 12, "CREDIT_CARD": 7, "CN_ID": 5,
                  "US_SSN": 5, "PRIVATE_KEY": 3}  # fmt: skip
CODE_EXTRA = {"python": ["log"], "perl": [], "shell": ["cli"], "c": [], "conf": ["env"], "yaml": [], "ini": [], "env": [],
              "prose_en": ["log", "cli"], "prose_zh": []}  # fmt: skip


def pick_frame(register: str, r: random.Random, entity: str | None = None):
    regs = [register] + [x for x in CODE_EXTRA.get(register, []) if r.random() < 0.3]
    reg = r.choice(regs)
    table = PII_FRAMES[reg]
    if entity is None:
        ents = [e for e in table if e != "PERSON"]
        entity = r.choices(ents, weights=[ENTITY_WEIGHTS[e] for e in ents])[0]
    if entity not in table:
        return None, reg
    return r.choice(table[entity]), reg


NATURAL_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][\w.+-]*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])")


def make_doc(i: int, pool: Pool, text: str, source: str, r: random.Random) -> Doc | None:
    inserts: list[tuple[int, list[str | V]]] = []
    DISJOINT["part"] = split_of(source)
    if pool.kind == "copyright":
        harvested = harvest_copyright(text)
        if not harvested:
            return None
        h = r.choice(harvested)
        ctx, off = cut(text, r, r.randint(300, 2600), around=h[2])
        labels = [[e, v, s - off, t - off, sub] for e, v, s, t, sub in harvested if s >= off and t <= off + len(ctx)]
        if not any(lab[0] == "PERSON" for lab in labels):
            return None
        n_look = r.randint(0, 1)
        looks = []
        if n_look:
            fn = r.choice(LOOK_FRAMES["prose_en"])
            at = insertion_points(ctx, "conf", r)
            # shift labels after the insertion point
            doc_text, _, looks = assemble(ctx, [(at, fn(r))], "conf")
            shift = len(doc_text) - len(ctx)
            labels = [[e, v, s + (shift if s >= at else 0), t + (shift if s >= at else 0), sub] for e, v, s, t, sub in labels]
            ctx = doc_text
        doc = Doc(f"{i:05d}", ctx, pool.kind, pool.lang, pool.fmt, source, labels, looks)
    else:
        reg = pool.register
        snippets: list[list[str | V]] = []
        for _ in range(r.choice([1, 1, 2, 2, 3, 3, 4, 5])):
            fn, _r = pick_frame(reg, r)
            if fn is not None:
                snippets.append(fn(r))
        n_names = {"prose_en": r.choice([0, 1, 1, 2]), "prose_zh": r.choice([0, 1, 1, 2, 2])}.get(reg, r.choice([0, 0, 0, 1]))
        for _ in range(n_names):
            fn, _r = pick_frame(reg, r, "PERSON")
            if fn is not None:
                snippets.append(fn(r))
        for _ in range(r.choice([1, 1, 2, 2, 3])):
            fns = LOOK_FRAMES[reg]
            if fns:
                snippets.append(r.choice(fns)(r))
        extra = sum(len(p if isinstance(p, str) else p.value) + 8 for s in snippets for p in s)
        if extra > 2600:
            snippets = snippets[:3]
            extra = sum(len(p if isinstance(p, str) else p.value) + 8 for s in snippets for p in s)
        target = r.randint(max(150, 300 - extra), max(300, 3000 - extra))
        ctx, _off = cut(text, r, target)
        if len(ctx) < 120:
            return None
        for s in snippets:
            inserts.append((insertion_points(ctx, reg, r, sentence_like(s)), s))
        doc_text, pii, looks = assemble(ctx, inserts, reg)
        doc = Doc(f"{i:05d}", doc_text, pool.kind, pool.lang, pool.fmt, source, pii, looks)
    if not 300 <= len(doc.text) <= 3000:
        return None
    for lab in doc.pii:
        assert doc.text[lab[2] : lab[3]] == lab[1], (lab, source)
    for lab in doc.lookalikes:
        assert doc.text[lab[1] : lab[2]] == lab[0], (lab, source)
    labelled = [(lab[2], lab[3]) for lab in doc.pii] + [(lab[1], lab[2]) for lab in doc.lookalikes]
    for m in NATURAL_EMAIL.finditer(doc.text):
        if not any(s < m.end() and m.start() < e for s, e in labelled):
            doc.natural.append(["EMAIL", m.group(0), m.start(), m.end()])
    return doc


def build(n_docs: int, seed: int, man_pages: int = 400, log=print) -> list[Doc]:
    r = random.Random(seed)
    all_pools = [p for p in pools(random.Random(f"{seed}-man"), man_pages) if p.paths]
    for p in all_pools:
        log(f"pool {p.kind}/{p.fmt}: {len(p.paths)} files")
    cache: dict[Path, str | None] = {}

    def load(pool: Pool, path: Path) -> str | None:
        if path not in cache:
            cache[path] = {"man": render_man, "mo": read_mo}.get(pool.loader, read_text)(path)
        return cache[path]

    docs: list[Doc] = []
    tries = 0
    while len(docs) < n_docs:
        tries += 1
        if tries > n_docs * 20:
            raise RuntimeError("too many failed documents")
        pool = r.choices(all_pools, weights=[p.weight for p in all_pools])[0]
        path = r.choice(pool.paths)
        text = load(pool, path)
        if not text or len(text) < 200:
            continue
        doc = make_doc(len(docs), pool, text, str(path), r)
        if doc is not None:
            docs.append(doc)
    return docs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "bench/.data/realtext-pii")
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--man-pages", type=int, default=400, help="man pages rendered (sampled by seed)")
    ap.add_argument("--disjoint", action="store_true",
                    help="heldout frames and planted names are ones tune never uses (a third of each template list "
                         "of 3+ and of the name pools, by hash)")  # fmt: skip
    args = ap.parse_args(argv)
    DISJOINT["on"] = args.disjoint
    pool_lines: list[str] = []
    docs = build(args.docs, args.seed, args.man_pages, log=lambda s: (pool_lines.append(s), print(s, file=sys.stderr)))
    args.out.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[Doc]] = {"tune": [], "heldout": []}
    for d in docs:
        parts[split_of(d.source)].append(d)
    stats = {}
    for part, ds in parts.items():
        with (args.out / f"{part}.jsonl").open("w") as f:
            for d in ds:
                f.write(json.dumps({"id": d.id, "text": d.text, "kind": d.kind, "lang": d.lang, "format": d.fmt, "source": d.source,
                                    "pii": d.pii, "lookalikes": d.lookalikes, "natural": d.natural}, ensure_ascii=False) + "\n")  # fmt: skip
        stats[part] = {
            "docs": len(ds), "chars": sum(len(d.text) for d in ds), "sources": len({d.source for d in ds}),
            "by_format": dict(Counter(f"{d.kind}/{d.fmt}" for d in ds)),
            "pii": dict(Counter(p[0] for d in ds for p in d.pii)), "lookalikes": sum(len(d.lookalikes) for d in ds),
            "natural_emails": sum(len(d.natural) for d in ds),
        }  # fmt: skip
    (args.out / "stats.json").write_text(json.dumps({"seed": args.seed, "docs": args.docs, "disjoint": args.disjoint, "pools": pool_lines, **stats}, indent=1, ensure_ascii=False))
    print(json.dumps(stats, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
