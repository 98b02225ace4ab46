"""A labelled PII benchmark: English and Chinese prose, code and config, with planted PII
values of every structured type and planted look-alikes that are not PII.

Each document records the PII values planted in it (which must be gone after scrubbing) and
the look-alikes (which must survive untouched). Deterministic per seed. Used by
tests/lib/data/pii/test_labelled_benchmark.py and bench/pii_throughput.py.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field


@dataclass
class Doc:
    text: str
    pii: list[tuple[str, str]] = field(default_factory=list)
    """(entity, value) planted."""
    lookalikes: list[str] = field(default_factory=list)


# --- PII value generators ------------------------------------------------------------------


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d * 2 > 9 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError


def card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                                 ("6011", 16), ("65", 16), ("35", 16), ("62", 16), ("4", 13)])  # fmt: skip
    digits = _luhn_complete(prefix, length, rng)
    style = rng.choice(["plain", "space", "dash"])
    if style == "plain" or length != 16:
        return digits if style == "plain" or length != 16 else digits
    sep = " " if style == "space" else "-"
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


def bad_luhn_16(rng: random.Random) -> str:
    good = _luhn_complete("4", 16, rng)
    return good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)


def cn_id(rng: random.Random) -> str:
    region = rng.choice(["110105", "310104", "440305", "510107", "330106", "320102"])
    year, month, day = rng.randint(1950, 2010), rng.randint(1, 12), rng.randint(1, 28)
    body = f"{region}{year}{month:02d}{day:02d}{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def phone(rng: random.Random) -> str:
    d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    cn_mobile = f"1{rng.choice('3456789')}{d(1)}"
    return rng.choice([
        f"({rng.randint(201, 989)}) {d(3)}-{d(4)}", f"{rng.randint(201, 989)}-{d(3)}-{d(4)}",
        f"{rng.randint(201, 989)}.{d(3)}.{d(4)}", f"+1 {rng.randint(201, 989)} {d(3)} {d(4)}",
        f"1-800-{d(3)}-{d(4)}", f"+44 20 {d(4)} {d(4)}", f"+44 7{d(3)} {d(6)}", f"+49 30 {d(8)}",
        f"+49 151 {d(8)}", f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}", f"+91 {rng.randint(70, 99)}{d(3)} {d(5)}",
        f"+81 3-{d(4)}-{d(4)}", f"+61 2 {d(4)} {d(4)}", f"{cn_mobile}{d(8)}", f"{cn_mobile} {d(4)} {d(4)}",
        f"{cn_mobile}-{d(4)}-{d(4)}", f"+86 {cn_mobile}{d(8)}", f"+86-{cn_mobile}-{d(4)}-{d(4)}",
        f"0086 {cn_mobile} {d(4)} {d(4)}",
    ])  # fmt: skip


def email(rng: random.Random) -> str:
    user = rng.choice(["john.doe", "j_smith", "li.wei", "zhang.san+news", "admin", "dev-team", "a.b.c", "m123"])
    host = rng.choice(["example.com", "mail.example.org", "corp.example.co.uk", "qq.com", "163.com", "uni.edu"])
    return f"{user}{rng.randint(0, 99)}@{host}"


def ipv4(rng: random.Random) -> str:
    """A public or private (internal) address: loopback, multicast, reserved and documentation
    ranges are look-alikes, not PII."""
    first = rng.choice([n for n in range(1, 224) if n not in (127, 169)])
    return ".".join([str(first), *(str(rng.randint(0, 254)) for _ in range(2)), str(rng.randint(1, 254))])


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(7)]
    prefix = rng.choice(["2a00", "2607", "2400", "fd12"])  # global unicast and unique-local
    if rng.random() < 0.5:
        return f"{prefix}:{groups[0]}::" + ":".join(groups[1:4])
    return ":".join([prefix, *groups])


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def api_key(rng: random.Random) -> str:
    return rng.choice([
        "AKIA" + _token(rng, 16, string.ascii_uppercase + string.digits),
        "ghp_" + _token(rng, 36), "github_pat_" + _token(rng, 40), "xoxb-" + _token(rng, 24, string.digits + "-"),
        "sk_live_" + _token(rng, 24), "AIza" + _token(rng, 35), "hf_" + _token(rng, 34), "glpat-" + _token(rng, 20),
    ])  # fmt: skip


def generic_secret(rng: random.Random) -> str:
    return _token(rng, rng.randint(16, 40), string.ascii_letters + string.digits + "_-")


def password(rng: random.Random) -> str:
    return rng.choice(["hunter2", "S3cr3t!pw", "correct-horse-9", "P@ssw0rd123", "qwerty!2024", "tr0ub4dor&3",
                       _token(rng, 12, string.ascii_letters + string.digits + "!#%&*")])  # fmt: skip


# --- look-alikes that are not PII ----------------------------------------------------------


def lookalike(rng: random.Random) -> str:
    return rng.choice([
        f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",  # version
        f"v{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",  # 4-part version
        _token(rng, 40, "0123456789abcdef"), _token(rng, 7, "0123456789abcdef"),  # git hashes
        bad_luhn_16(rng),  # 16 digits failing Luhn
        f"20{rng.randint(10, 29)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",  # ISO date
        f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/20{rng.randint(10, 29)}",
        f"HTTP {rng.choice([200, 201, 301, 302, 400, 401, 403, 404, 500, 503])}",
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",  # time
        f"{rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",  # decimal
        f"ISBN 978-{rng.randint(0, 9)}-{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}",
        f"{_token(rng, 8, '0123456789abcdef')}-{_token(rng, 4, '0123456789abcdef')}-4{_token(rng, 3, '0123456789abcdef')}"
        f"-a{_token(rng, 3, '0123456789abcdef')}-{_token(rng, 12, '0123456789abcdef')}",  # UUID
        f"port {rng.randint(1024, 65535)}", f"{rng.randint(1, 999)} MB", f"{rng.randint(100000, 999999)}",  # numbers
        f"Foo::Bar::{rng.choice(['Baz', 'Qux'])}", "std::vector<int>", f"line {rng.randint(1, 9999)}",
        f"version 10.0.{rng.randint(10000, 22000)}.{rng.randint(1, 999)}", f"{rng.randint(1600000000, 1800000000)}",  # epoch
        f"{rng.uniform(-90, 90):.4f}, {rng.uniform(-180, 180):.4f}",  # coordinates
        f">={rng.randint(1, 3)}.{rng.randint(0, 9)},<{rng.randint(4, 9)}", f"0x{_token(rng, 8, '0123456789abcdef')}",
        f"{rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(100, 999)}",  # grouped counts
        rng.choice(["127.0.0.1", "0.0.0.0", "::1", "192.0.2.17", "2001:db8::1", "224.0.0.251"]),  # not personal
        f"+{rng.randint(1, 99)}.{rng.randint(1, 999)}",  # signed decimal
    ])  # fmt: skip


# --- documents -----------------------------------------------------------------------------

_FILLER_EN = ["The module exports one function.", "See the manual for details.", "It returns a list in list context.",
              "Tests pass on every supported platform.", "The build finished without warnings."]  # fmt: skip
_FILLER_ZH = ["该模块导出一个函数。", "详情请参阅手册。", "在列表上下文中返回列表。", "所有平台的测试均已通过。"]


def _prose_en(rng: random.Random, doc: Doc) -> None:
    kind, value = rng.choice([("EMAIL", email(rng)), ("PHONE", phone(rng)), ("CREDIT_CARD", card(rng)),
                              ("US_SSN", ssn(rng)), ("IP_ADDRESS", ipv4(rng)), ("IP_ADDRESS", ipv6(rng)),
                              ("CN_ID", cn_id(rng))])  # fmt: skip
    intro = {"EMAIL": "Write to", "PHONE": "Call us at", "CREDIT_CARD": "Charge card", "US_SSN": "SSN:",
             "IP_ADDRESS": "The server at", "CN_ID": "ID number"}[kind]  # fmt: skip
    look = lookalike(rng)
    doc.text += f"{rng.choice(_FILLER_EN)} {intro} {value} for help. Released as {look}. {rng.choice(_FILLER_EN)}\n"
    doc.pii.append((kind, value))
    doc.lookalikes.append(look)


def _prose_zh(rng: random.Random, doc: Doc) -> None:
    kind, value, sentence = rng.choice([
        ("PHONE", v := phone(rng), f"如有问题请拨打{v}联系客服。"),
        ("CN_ID", v2 := cn_id(rng), f"身份证号码：{v2}，请妥善保管。"),
        ("EMAIL", v3 := email(rng), f"请发送邮件至 {v3} 。"),
        ("IP_ADDRESS", v4 := ipv4(rng), f"服务器地址为 {v4} 。"),
    ])  # fmt: skip
    look = lookalike(rng)
    doc.text += f"{rng.choice(_FILLER_ZH)}{sentence}版本 {look}。\n"
    doc.pii.append((kind, value))
    doc.lookalikes.append(look)


def _code(rng: random.Random, doc: Doc) -> None:
    secret, pw, key = generic_secret(rng), password(rng), api_key(rng)
    look = lookalike(rng)
    style = rng.choice(["python", "yaml", "env", "json", "perl", "url", "ini"])
    if style == "python":
        text = f'API_KEY = "{key}"\nclient = Client(token="{secret}", timeout=30)\ndb_password = "{pw}"\nVERSION = "{look}"\n'
        planted = [("API_KEY", key), ("API_KEY", secret), ("PASSWORD", pw)]
    elif style == "yaml":
        text = f"database:\n  host: db.internal\n  password: {pw}\n  secret_key: {secret}\nimage: app:{look}\n"
        planted = [("PASSWORD", pw), ("API_KEY", secret)]
    elif style == "env":
        text = f"AWS_ACCESS_KEY_ID={key}\nAWS_SECRET_ACCESS_KEY={secret}\nDB_PASSWORD={pw}\nRELEASE={look}\n"
        planted = [("API_KEY", key), ("API_KEY", secret), ("PASSWORD", pw)]
    elif style == "json":
        text = f'{{"apiKey": "{secret}", "password": "{pw}", "version": "{look}"}}\n'
        planted = [("API_KEY", secret), ("PASSWORD", pw)]
    elif style == "perl":
        text = f"my $password = '{pw}';\nmy %cfg = (api_key => '{secret}', retries => 3);\n# build {look}\n"
        planted = [("PASSWORD", pw), ("API_KEY", secret)]
    elif style == "url":
        pw_url = pw.replace("@", "").replace("/", "").replace("#", "") or "pw1234"
        text = f'DATABASE_URL = "postgres://app:{pw_url}@db.example.com:5432/prod"  # {look}\n'
        planted = [("PASSWORD", pw_url)]
    else:
        text = f"[auth]\nuser = deploy\npasswd = {pw}\ntoken = {key}\n; version {look}\n"
        planted = [("PASSWORD", pw), ("API_KEY", key)]
    doc.text += text
    doc.pii.extend(planted)
    doc.lookalikes.append(look)


def _code_without_pii(rng: random.Random, doc: Doc) -> None:
    """Code that talks about passwords and tokens without holding any."""
    look = lookalike(rng)
    doc.text += rng.choice([
        "password = getpass.getpass()\ntoken = tokenizer.encode(text)\n",
        "def login(user: str, password: str) -> bool:\n    return check(user, password)\n",
        "secret_key = os.environ['SECRET_KEY']\napi_key = settings.API_KEY\n",
        "my $password = $ENV{DB_PASSWORD};\n",
        "password: ${DB_PASSWORD}\ntoken: <your-token-here>\n",
    ]) + f"# {look}\n"  # fmt: skip
    doc.lookalikes.append(look)


def make_documents(n: int, seed: int = 0) -> list[Doc]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        doc = Doc("")
        for _ in range(rng.randint(2, 5)):
            rng.choice([_prose_en, _prose_en, _prose_zh, _code, _code_without_pii])(rng, doc)
        docs.append(doc)
    return docs


NAMES = ["Jane Smith", "John Williams", "Maria Garcia", "David Chen", "Sarah Johnson", "Michael Brown", "Emily Davis",
         "Robert Miller", "Linda Wilson", "James Taylor"]  # fmt: skip


def name_documents(n: int, seed: int = 0) -> list[Doc]:
    """English sentences with a person's name (for name recall with and without NER)."""
    rng = random.Random(seed)
    templates = ["Yesterday {} presented the quarterly results to the board.", "Please forward the report to {} by Friday.",
                 "{} fixed the memory leak in the parser last week.", "According to {}, the release is on schedule."]  # fmt: skip
    return [Doc(t.format(name), pii=[("PERSON", name)]) for t, name in
            ((rng.choice(templates), rng.choice(NAMES)) for _ in range(n))]  # fmt: skip


def score(docs: list[Doc], scrubbed: list[str]) -> dict[str, float]:
    """Recall: planted values no longer present; survival: look-alikes still present."""
    planted = found = looks = kept = 0
    missed: dict[str, int] = {}
    for doc, out in zip(docs, scrubbed, strict=True):
        for entity, value in doc.pii:
            planted += 1
            if value not in out:
                found += 1
            else:
                missed[entity] = missed.get(entity, 0) + 1
        for look in doc.lookalikes:
            looks += 1
            kept += look in out
    return {"recall": found / max(planted, 1), "lookalike_survival": kept / max(looks, 1), "planted": planted,
            "lookalikes": looks, "missed": missed}  # fmt: skip
