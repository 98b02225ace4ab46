"""Structured PII found by pattern plus validation, in English and Chinese text and in code.

Each detector is a compiled regular expression (the candidates) and a validator that
rejects look-alikes: card numbers must pass Luhn and carry a card-network prefix, Chinese
resident IDs their checksum and a real birth date, IPs must parse, SSNs avoid the ranges
never issued. Detectors report spans only; nothing here logs or stores what matched.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from domainllm.spec.pii import IP_SCOPES, PII_ENTITIES


@dataclass(frozen=True)
class Detector:
    entity: str
    pattern: re.Pattern[str]
    group: int | str = 0
    """The part of the match that is PII (e.g. only the value of `password = "..."`)."""
    valid: Callable[[str, re.Match[str]], bool] | None = None
    hint: Callable[[str], bool] | None = None
    """A cheap test on the lower-cased text; when False the pattern is not run at all."""

    def find(self, text: str, lower: str | None = None) -> Iterator[tuple[int, int]]:
        if self.hint is not None and not self.hint(text.lower() if lower is None else lower):
            return
        for m in self.pattern.finditer(text):
            value = m.group(self.group)
            if value and (self.valid is None or self.valid(value, m)):
                yield m.start(self.group), m.end(self.group)


# --- validators -------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_PREFIX = re.compile(r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[689])|6(?:011|5|4[4-9]|2)|35")


_CARD_GROUPS = re.compile(r"\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?|\d{4}([ -])\d{6}\2\d{4,5}")
"""How cards are written: digits only, 4-4-4-4(-3), 4-6-5 (Amex) or 4-6-4 (Diners)."""


def _card_ok(value: str, m: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", value)
    if not (13 <= len(digits) <= 19 and _CARD_GROUPS.fullmatch(value) and _CARD_PREFIX.match(digits)):
        return False
    text, start, end = m.string, m.start(), m.end()
    if _NUMBER_BEFORE.search(text, max(0, start - 10), start) or _NUMBER_AFTER.match(text, end, end + 10):
        return False  # one run of a table of numbers (Unicode charts, hex dumps), not a card
    return luhn_ok(digits)


_NUMBER_BEFORE = re.compile(r"(?<![A-Za-z0-9_])(?=[0-9A-Fa-f]*\d)[0-9A-Fa-f]{2,8}[ -]$")
_NUMBER_AFTER = re.compile(r"[ -](?=[0-9A-Fa-f]*\d)[0-9A-Fa-f]{2,8}(?![A-Za-z0-9_])")


_ORDER = re.compile(r"(?i)(?:订单|单号|流水号|发票|order|invoice|tracking|txn|transaction)[\w ]{0,6}[\"'：:=# ]*$")

_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"


def cn_id_ok(value: str, _m: re.Match[str] | None = None) -> bool:
    v = value.upper()
    if len(v) != 18 or not v[:17].isdigit():
        return False
    try:
        dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return False
    return _CN_CHECK[sum(int(c) * w for c, w in zip(v[:17], _CN_WEIGHTS, strict=True)) % 11] == v[17]


def _ssn_ok(value: str, _m: re.Match[str]) -> bool:
    area, group, serial = re.split(r"[- ]", value)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


DEFAULT_KEEP_IP_SCOPES = IP_SCOPES[:-1]
"""Kept by default: 127.0.0.1, ::1, 0.0.0.0, fe80::, 224.0.0.x, 240.x, 192.0.2.x, 2001:db8:: identify
nobody and are everywhere in code and docs. Public and private (internal network) addresses
are replaced."""

_DOCUMENTATION = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]


def _scope(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local and not _eui64(ip):
        return "link_local"
    if ip.is_multicast:
        return "multicast"
    if any(ip.version == net.version and ip in net for net in _DOCUMENTATION):
        return "documentation"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    return None


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if ip.version == 6 and ip in _NAT64:  # 64:ff9b::1.2.3.4 carries an IPv4 address
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _eui64(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An IPv6 interface id made from a MAC address (`xxxx:xxff:fexx:xxxx`): it names the
    device wherever it goes, link-local or not."""
    return ip.version == 6 and (int(ip) >> 24) & 0xFFFF == 0xFFFE


def _ipv4_ok(keep: frozenset[str]) -> Callable[[str, re.Match[str]], bool]:
    def ok(value: str, m: re.Match[str]) -> bool:
        if any(len(p) > 1 and p[0] == "0" for p in value.split(".")):
            return False  # 01.02.03.04 is a version or a date, not how addresses are written
        before = m.string[max(0, m.start() - 9) : m.start()].lower()
        if re.search(r"(?:\bv|\bversion|\bver\.?|\bbuild|\brelease|\brev(?:ision)?|\bpatch)\s*$", before):
            return False  # v1.2.3.4, version 10.0.0.1, Build 1.15.0.10 (not "Server 10.0.0.1")
        ip = _ip(value)
        return ip is not None and _scope(ip) not in keep

    return ok


def _ipv6_ok(keep: frozenset[str]) -> Callable[[str, re.Match[str]], bool]:
    def ok(value: str, _m: re.Match[str]) -> bool:
        if value.count(":") < 2 or not any(c.isdigit() for c in value):
            return False  # "dead::beef", C++/Perl "Foo::Bar" look-alikes
        ip = _ip(value)
        return ip is not None and _scope(ip) not in keep

    return ok


_USERINFO = re.compile(r"://[^\s:/@]{0,64}:[^\s/@]*$")


def _email_ok(value: str, m: re.Match[str]) -> bool:
    """Not the `password@host` tail of `scheme://user:password@host` (the password detector's)."""
    return not _USERINFO.search(m.string, max(0, m.start() - 70), m.start())


_NOT_SECRET = {"none", "null", "nil", "true", "false", "undefined", "str", "string", "bytes", "int", "required",
               "optional", "changeme", "password", "secret", "xxxxxxxx", "********", "your_password", "your-password",
               "example", "redacted", "hidden", "pass", "passwd", "pwd", "user", "username", "xxx", "***"}  # fmt: skip
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*")
_CODE = re.compile(r"[()\[\]{}]|::|->|\$\w|^\d+(?:\.\d+)+$")
"""Unquoted values that are code, not secrets: calls, indexing, blocks, `Foo::bar`, `$x->y`,
variables; and version numbers (`'1.302103'` after `Test2::Event::Pass =>`)."""


def _value_ok(value: str, quoted: bool, random_min: int = 16) -> bool:
    v = value.strip()
    if not v or v.lower() in _NOT_SECRET or set(v) <= {"*", "x", "X", ".", "-"}:
        return False  # placeholders and masks
    if v.startswith(("$", "%(", "${", "{{", "<", "@", "ENV[", "os.", ",", "/", "./", "~/", "file:")):
        return False  # references to where the secret lives, not the secret
    if re.fullmatch(r"\d+(?:\.\d+)+", v):
        return False  # a version number
    if quoted:
        return not re.search(r"\$\w|->", v)  # interpolated code: "Token: ", $token->dump, "
    if _CODE.search(v):
        return False
    # unquoted: a config value, not code (`token = tokenizer.encode(x)`, `password: str`)
    if not _IDENTIFIER.fullmatch(v) or any(c.isdigit() for c in v):
        return True
    # an identifier-shaped value: a secret only if it looks random (mixed case, long enough)
    return len(v) >= random_min and "." not in v and v.lower() != v and v.upper() != v


_SECRET_KEYS = (r"api[_-]?key|apikey|api[_-]?secret|secret[_-]?key|secret|access[_-]?key(?:[_-]?id)?|access[_-]?token|"
                r"auth[_-]?token|bearer[_-]?token|refresh[_-]?token|client[_-]?secret|private[_-]?key|token|"
                r"aws_secret_access_key")  # fmt: skip
_PASSWORD_KEYS = r"password|passwd|passwort|pass_?word|pwd|db_?pass|pass|pgpassword|mysql_?pwd|密码|口令"
_ASSIGN = r"\b[\"']?[ \t]*(?:[:=]|=>|:=|：)[ \t]*"


def _assignment(keys: str, quoted_min: int, unquoted_min: int, spaces: bool) -> re.Pattern[str]:
    """`key = "value"` (quoted) or `key: value` (unquoted) in code, config and prose; the
    value is group `v`, and group `q` holds the quote when there is one. Not a key that is
    part of a name (`Test2::Event::Pass`, `$obj->token`)."""
    quoted = r"[^\"'`\n]" if spaces else r"[^\"'`\s]"
    return re.compile(
        rf"(?i)(?<!::)(?<!->)(?:\b|_)(?:{keys})(?:_[A-Z0-9]+)*{_ASSIGN}"
        rf"(?:(?P<q>[\"'`])(?P<v>{quoted}{{{quoted_min},200}}?)(?P=q)|(?P<u>[^\s\"'`,;&]{{{unquoted_min},200}}))"
    )


@dataclass(frozen=True)
class _Assignment(Detector):
    random_min: int = 16
    """Shortest identifier-shaped unquoted value taken for a secret (`Xk3...` always is)."""

    def find(self, text: str, lower: str | None = None) -> Iterator[tuple[int, int]]:
        if self.hint is not None and not self.hint(text.lower() if lower is None else lower):
            return
        for m in self.pattern.finditer(text):
            group = "v" if m.group("q") is not None else "u"
            if _value_ok(m.group(group), quoted=group == "v", random_min=self.random_min):
                yield m.start(group), m.end(group)


_ARG = r"""(?:"[^"\n]*"|'[^'\n]*'|[^,()\n"']+?)"""  # one call argument: a string literal or an expression
_Q = r"""(?P<q>["'])(?P<v>[^"'\n]{1,200})(?P=q)"""

_CALLS = (
    rf"DBI->connect(?:_cached)?\(\s*{_ARG}\s*,\s*{_ARG}\s*,\s*{_Q}",  # Perl: DBI->connect($dsn, 'user', 'pw')
    rf"\b(?:HTTPBasicAuth|HTTPDigestAuth|HTTPProxyAuth|BasicAuth|basic_auth|http_auth)\(\s*{_ARG}\s*,\s*{_Q}",
    rf"\bauth\s*=\s*[\[(]\s*{_ARG}\s*,\s*{_Q}\s*[\])]",  # requests.get(url, auth=('user', 'pw'))
    rf"(?:\.|->)login\(\s*{_ARG}\s*,\s*{_Q}",  # smtplib / ftplib / Net::FTP: server.login(user, 'pw'), $ftp->login(...)
    rf"\bmysql_real_connect\(\s*{_ARG}\s*,\s*{_ARG}\s*,\s*{_ARG}\s*,\s*{_Q}",  # C: (conn, host, user, pw, ...)
    rf"#[ \t]*define[ \t]+\w*(?:PASSWORD|PASSWD|PWD|PASS)\w*[ \t]+{_Q}",  # C: #define DB_PASSWORD "pw"
    rf"\becho[ \t]+{_Q}[ \t]*\|[ \t]*sudo[ \t]+-S",  # echo 'pw' | sudo -S
    rf"\b(?:pymysql|MySQLdb|mysql\.connector)\.connect\(\s*{_ARG}\s*,\s*{_ARG}\s*,\s*{_Q}",  # (host, user, pw)
)  # fmt: skip
"""Passwords passed by position to the calls that take them (group `v`)."""

_CLI = re.compile(
    r"""\bmysql(?:dump|admin|import|show|check)?\b[^\n|;&]*?\s-p(?P<v>[^\s'"$-][^\s'"]*)"""  # mysql -uroot -pSECRET
    r"""|\bsshpass\s+-p\s*(?:(?P<q4>['"])(?P<v4>[^'"\n]+)(?P=q4)|(?P<v2>[^\s'"$-]\S*))"""
    r"""|\b(?:masterauth|requirepass|auth_pass)[ \t]+(?P<v5>[^\s'"$#]\S*)"""  # redis.conf, keepalived.conf
    r"""|\bcurl\b[^\n|;&]*?\s(?:-u|--user)[ \t]*['"]?[^\s:'"]+:(?P<v7>[^\s'"@$][^\s'"@]*)"""  # curl -u user:pw
    r"""|\blogin[ \t]+\S+[ \t]+password[ \t]+(?P<v6>[^\s'"$]\S*)"""  # .netrc
    r"""|(?<![\w-])--(?:db-|admin-)?password[ \t]+(?P<v3>[^\s'"$<{-]\S*)"""  # --password pw (`--password=pw` is an assignment)
)
"""Passwords on command lines."""


_PROSE = re.compile(
    r"""(?i)\b(?:password|passphrase|passcode|passwort)[ \t]+(?:is|was|remains|will be)[ \t]+(?:set[ \t]+to[ \t]+)?"""
    r"""["'“‘]?(?P<v>[^\s"'”’]{2,63}(?:[^\s"'”’.,;:)]|\.(?=\.)))["'”’]?[.,;:)]*(?=\s|$)"""
    r"""|\b(?:log[ \t]?in|sign[ \t]in)[ \t]+(?:with|as|using)[ \t]+[\w.@-]+[ \t]*/[ \t]*(?P<v2>[^\s"']{2,63}(?:[^\s"'.,;:)]|\.(?=\.)))[.,;:)]*(?=\s|$)"""
    r"""|(?:密码|口令)(?:为|是|：|:)?[ \t]*(?P<v3>[\x21-\x7e]{3,64}?)(?=[\x00-\x20，。；、）]|$)"""
)
"""Passwords written out in sentences, English and Chinese."""


def _strong(value: str) -> bool:
    """A value in prose is a password only if it does not read as a word: a digit, a symbol,
    mixed case, or 16 characters or more (`the password is required` is not one)."""
    v = value.strip()
    return _value_ok(v, quoted=True) and (
        any(c.isdigit() for c in v) or not v.isalnum() or (v.lower() != v and v.upper() != v) or len(v) >= 16)


@dataclass(frozen=True)
class _Positional(Detector):
    """The value is whichever group named `v...` took part in the match; it must pass
    `secret` (a quoted-value check by default, `_strong` for prose)."""

    secret: Callable[[str], bool] = lambda v: _value_ok(v, quoted=True)

    def find(self, text: str, lower: str | None = None) -> Iterator[tuple[int, int]]:
        if self.hint is not None and not self.hint(text.lower() if lower is None else lower):
            return
        for m in self.pattern.finditer(text):
            group = next(g for g, v in m.groupdict().items() if v is not None and g.startswith("v"))
            if self.secret(m.group(group)):
                yield m.start(group), m.end(group)


@dataclass(frozen=True)
class _IPv6(Detector):
    """`64 bytes from 2001:db8::1: icmp_seq=1`: the colon after the address is the text's."""

    def find(self, text: str, lower: str | None = None) -> Iterator[tuple[int, int]]:
        if self.hint is not None and not self.hint(text.lower() if lower is None else lower):
            return
        for m in self.pattern.finditer(text):
            value, end = m.group(), m.end()
            if value.endswith(":") and not value.endswith("::"):
                value, end = value[:-1], end - 1
            if self.valid is None or self.valid(value, m):
                yield m.start(), end


# --- detectors --------------------------------------------------------------------------

_D = r"(?<![A-Za-z0-9_.+-])"  # left boundary for numbers and addresses


def detectors(keep_ip_scopes: tuple[str, ...] = DEFAULT_KEEP_IP_SCOPES) -> tuple[Detector, ...]:
    """Every detector; IP addresses in `keep_ip_scopes` (see `IP_SCOPES`) are left alone."""
    unknown = sorted(set(keep_ip_scopes) - set(IP_SCOPES))
    if unknown:
        raise ValueError(f"unknown IP scopes {unknown}; known: {list(IP_SCOPES)}")
    keep = frozenset(keep_ip_scopes)
    return _STRUCTURED + (
        Detector(
            "IP_ADDRESS",
            re.compile(r"(?<![A-Za-z0-9_.-])(?:\d{1,3}\.){3}\d{1,3}(?![A-Za-z0-9_]|\.\d)"),
            valid=_ipv4_ok(keep),
        ),
        _IPv6(
            "IP_ADDRESS",
            re.compile(r"(?<![A-Za-z0-9_:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
                       r"(?:%[A-Za-z0-9_.]{1,16})?(?![A-Za-z0-9_]|:[0-9A-Fa-f:]|\.\d)"),  # fmt: skip
            valid=_ipv6_ok(keep),
            hint=lambda t: "::" in t or t.count(":") >= 5,
        ),
    )


_STRUCTURED: tuple[Detector, ...] = (
    Detector(
        "EMAIL",
        re.compile(r"(?<![A-Za-z0-9_.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9_-])"),
        valid=_email_ok,
        hint=lambda t: "@" in t,
    ),
    Detector(
        "PRIVATE_KEY",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        hint=lambda t: "private key" in t,
    ),
    Detector(
        "API_KEY",
        re.compile(
            r"(?<![A-Za-z0-9])(?:"
            r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}"  # AWS access key ids
            r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"  # GitHub
            r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
            r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
            r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
            r"|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"  # OpenAI / Anthropic style
            r"|AIza[0-9A-Za-z_-]{35}"  # Google
            r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
            r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"  # JWT
            r")(?![A-Za-z0-9])"
        ),
    ),
    # generic secrets and passwords assigned in code and config; only the value is replaced
    _Assignment("API_KEY", _assignment(_SECRET_KEYS, 8, 12, spaces=False),
                hint=lambda t: "key" in t or "secret" in t or "token" in t),  # fmt: skip
    _Assignment("PASSWORD", _assignment(_PASSWORD_KEYS, 1, 3, spaces=True),
                hint=lambda t: "pass" in t or "pwd" in t or "密码" in t or "口令" in t, random_min=8),  # fmt: skip
    Detector(
        "PASSWORD",  # credentials in URLs: scheme://user:password@host
        re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{0,64}:(?P<v>[^\s/@]{1,128})@[\w.-]+"),
        group="v",
        valid=lambda v, m: v.lower() not in _NOT_SECRET and not v.startswith(("$", "{", "<", "%")),
        hint=lambda t: "://" in t,
    ),
    *(_Positional("PASSWORD", re.compile(call),
                  hint=lambda t: "auth" in t or "connect" in t or "login" in t or "define" in t or "sudo" in t)
      for call in _CALLS),
    _Positional("PASSWORD", _CLI, hint=lambda t: " -p" in t or "password " in t or "auth" in t or "requirepass" in t or "curl" in t),
    _Positional("API_KEY", re.compile(rf"#[ \t]*define[ \t]+\w*(?:API_?KEY|SECRET|TOKEN|ACCESS_KEY)\w*[ \t]+{_Q}"),
                hint=lambda t: "define" in t),  # C: #define API_KEY "..."
    _Positional("PASSWORD", _PROSE, secret=_strong, hint=lambda t: "pass" in t or "log" in t or "sign" in t or "密码" in t or "口令" in t),
    Detector(
        "CREDIT_CARD",
        re.compile(_D + r"(?:\d[ -]?){12,18}\d(?![A-Za-z0-9_-])"),
        valid=_card_ok,
    ),
    Detector(
        "CN_ID",  # not where the text says it is an order or invoice number
        re.compile(r"(?<![A-Za-z0-9_])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![A-Za-z0-9_])"),
        valid=lambda v, m: cn_id_ok(v) and not _ORDER.search(m.string, max(0, m.start() - 16), m.start()),
    ),
    Detector(
        "US_SSN",
        re.compile(_D + r"\d{3}([- ])\d{2}\1\d{4}(?![A-Za-z0-9_-])"),
        valid=_ssn_ok,
    ),
    Detector(
        "PHONE",  # Chinese mobile numbers, with or without +86 and separators
        re.compile(r"(?<![A-Za-z0-9_+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?![A-Za-z0-9_-])"),
    ),
    Detector(
        "PHONE",  # international: +CC then 6-14 digits in groups
        re.compile(r"(?<![A-Za-z0-9_+.])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,6}(?![A-Za-z0-9_-]|\.\d)"),
        valid=lambda v, m: 8 <= sum(c.isdigit() for c in v) <= 15 and not re.fullmatch(r"\+\d+\.\d+", v),
        hint=lambda t: "+" in t,
    ),
    Detector(
        "PHONE",  # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
        re.compile(r"(?<![A-Za-z0-9_+.-])(?:1[ .-])?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![A-Za-z0-9_-]|\.\d)"),
    ),
    Detector(
        "PHONE",  # Chinese landlines: 010-12345678, 0755-2452131, (021) 5758 3146
        re.compile(r"(?<![A-Za-z0-9_+.-])(?:0\d{2,3}-\d{7,8}|\(0\d{2,3}\)[ ]?\d{3,4}[ -]?\d{4})(?![A-Za-z0-9_-]|\.\d)"),
    ),
    Detector(
        "US_SSN",  # nine digits in a row, only where the text says it is an SSN
        re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\b[\s:#=\"'(]{0,4}(?:is[ \t]+)?(?P<v>\d{9})(?!\d)"),
        group="v",
        valid=lambda v, m: _ssn_ok(f"{v[:3]}-{v[3:5]}-{v[5:]}", m),
        hint=lambda t: "ssn" in t or "social security" in t,
    ),
)

"""Order matters only for ties: on overlapping spans the longer one wins (see scrubber)."""

DETECTORS = detectors()

ENTITIES: tuple[str, ...] = tuple(dict.fromkeys(d.entity for d in DETECTORS)) + ("PERSON",)
assert set(ENTITIES) == set(PII_ENTITIES), "spec.pii.PII_ENTITIES and the detectors disagree"
