"""Each structured PII type: what is found, what is replaced, and the look-alikes left alone."""

from __future__ import annotations

import pytest

from domainllm.data.pii.patterns import cn_id_ok, luhn_ok
from domainllm.data.pii.scrubber import Scrubber

SCRUB = Scrubber(names_en=False, names_zh=False)  # names: test_names.py


@pytest.mark.parametrize(
    "text,expected",
    [
        ("mail jane.doe+x@mail.example.co.uk now", "mail <EMAIL> now"),
        ("Call (555) 123-4567 or 555.123.4567", "Call <PHONE> or <PHONE>"),
        ("UK +44 20 7946 0958, DE +49 30 12345678", "UK <PHONE>, DE <PHONE>"),
        ("手机13812345678，或 +86 139-1234-5678", "手机<PHONE>，或 <PHONE>"),
        ("card 4111-1111-1111-1111 and 378282246310005", "card <CREDIT_CARD> and <CREDIT_CARD>"),
        ("SSN 078-05-1120.", "SSN <US_SSN>."),
        ("身份证11010519491231002X。", "身份证<CN_ID>。"),
        ("host 10.1.2.3 and 2a00:1450:4001:82b::200e", "host <IP_ADDRESS> and <IP_ADDRESS>"),
        ("key AKIAIOSFODNN7EXAMPLE", "key <API_KEY>"),
        ('token = "ghp_' + "a1" * 18 + '"', 'token = "<API_KEY>"'),
        ("password: hunter2\n", "password: <PASSWORD>\n"),
        ("my $password = 'S3cret!';", "my $password = '<PASSWORD>';"),
        ("DB_PASSWORD=correcthorse99", "DB_PASSWORD=<PASSWORD>"),
        ("postgres://admin:pa55w0rd@db.example.com/app", "postgres://admin:<PASSWORD>@db.example.com/app"),
        ("secret_key: Zq8PmX2vR7tY4wK9sL3n", "secret_key: <API_KEY>"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "<PRIVATE_KEY>"),
        # what real text showed we missed (issue 18)
        ("Server 102.212.196.186 and backup 45.33.2.1.", "Server <IP_ADDRESS> and backup <IP_ADDRESS>."),
        ("mapped ::ffff:8.8.4.4, zoned 2600:1f18::1%eth0, [2a03:2880::1]:443", "mapped <IP_ADDRESS>, zoned <IP_ADDRESS>, [<IP_ADDRESS>]:443"),
        ("DBI->connect($dsn, 'app', 'RcKp2rsN0ps');", "DBI->connect($dsn, 'app', '<PASSWORD>');"),
        ('DBI->connect("dbi:Pg:dbname=x", $user, "s3cr3t!", {RaiseError => 1})', 'DBI->connect("dbi:Pg:dbname=x", $user, "<PASSWORD>", {RaiseError => 1})'),
        ("requests.get(url, auth=('bob', 'hunter22'))", "requests.get(url, auth=('bob', '<PASSWORD>'))"),
        ("HTTPBasicAuth('bob', 'Tr0ub4dor'); smtp.login(user, 'mailpw99')", "HTTPBasicAuth('bob', '<PASSWORD>'); smtp.login(user, '<PASSWORD>')"),
        ("mysql -u root -pS3cretPw app < dump.sql", "mysql -u root -p<PASSWORD> app < dump.sql"),
        ("PGPASSWORD=abc123 psql -h db", "PGPASSWORD=<PASSWORD> psql -h db"),
        ("jdbc:postgresql://db/app?user=app&password=Xy12&ssl=true", "jdbc:postgresql://db/app?user=app&password=<PASSWORD>&ssl=true"),
        ("redis://:pw123@cache:6379/0", "redis://:<PASSWORD>@cache:6379/0"),
        ('#define DB_PASSWORD "Xy12pw!"', '#define DB_PASSWORD "<PASSWORD>"'),
        ("SECRET_KEY_BASE=9f8e7d6c5b4a39281706f5e4d3c2b1a0", "SECRET_KEY_BASE=<API_KEY>"),
        ('mysql_real_connect(c, "db", "app", "Pw12345x", "orders", 0, NULL, 0);', 'mysql_real_connect(c, "db", "app", "<PASSWORD>", "orders", 0, NULL, 0);'),
        ("$ftp->login('app', 'S3cr3tx') or die;", "$ftp->login('app', '<PASSWORD>') or die;"),
        ("requirepass Zx9pass22\nmachine h login root password Tr0ub4", "requirepass <PASSWORD>\nmachine h login root password <PASSWORD>"),
        ("The root password is Qw3rty!! until then. Log in with admin / Adm1n2024.", "The root password is <PASSWORD> until then. Log in with admin / <PASSWORD>."),
        ("初始密码为 Abc@12345，用户名 admin，口令 Passw0rd9", "初始密码为 <PASSWORD>，用户名 admin，口令 <PASSWORD>"),
        ("echo 'Sud0pw!' | sudo -S reboot; sshpass -p 'P4ssw0rd' ssh h", "echo '<PASSWORD>' | sudo -S reboot; sshpass -p '<PASSWORD>' ssh h"),
        ("SSN 123456789 and ssn: 078051120", "SSN <US_SSN> and ssn: <US_SSN>"),
        ("座机：0755-24521310，(021) 5758 3146", "座机：<PHONE>，<PHONE>"),
        ("Call us at +1 386 712 4711. Card 3056 930902 5904.", "Call us at <PHONE>. Card <CREDIT_CARD>."),
        ("via 64:ff9b::143.191.219.182 and fe80::21a:2bff:fe3c:4d5e%eth0", "via <IP_ADDRESS> and <IP_ADDRESS>"),
        ("64 bytes from 2a03:2880:f12f:83::25de: icmp_seq=1", "64 bytes from <IP_ADDRESS>: icmp_seq=1"),
    ],
)
def test_pii_becomes_typed_placeholders(text: str, expected: str) -> None:
    assert SCRUB.scrub(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3 and v10.0.0.1, released 2024-01-15 at 12:30:45",
        "HTTP 404 after 3 retries; commit 3f2a9c1d4e5b6a7c8d9e0f1a2b3c4d5e6f7a8b9c",
        "order 4111 1111 1111 1112 (fails Luhn), 1234567890123456",
        "Data::Dumper and std::vector<int>, dead::beef",
        "password = getpass.getpass()\ntoken = tokenizer.encode(text)\npassword: str",
        "api_key = settings.API_KEY\nsecret = os.environ['SECRET']\npassword: ${DB_PASSWORD}",
        "ISBN 978-3-16-148410-0, 37.7749, -122.4194, epoch 1700000000",
        "000-12-3456 and 666-12-3456 are never issued",
        "11010519491231002Y has a wrong checksum",
        "listen on 127.0.0.1, ::1 or 0.0.0.0; docs use 192.0.2.1 and 2001:db8::1; perl-5.6.78.9",
        "Decimal('+35236450.6'); 52BE 5236 5241 4111111111111111 5352 5354 (a Unicode table)",
        "my $pwd = CPAN::anycwd(); token = tokenizer[len(h):]; Test2::Event::Pass' => '1.302103'",
        'print "Token: ", $token->dump; if pwd:\n    try:',
        "mysql -u root -p app; DBI->connect($dsn, $user, $password); auth=(user, os.environ['PW'])",
        "ver 1.2.3.4, v10.0.0.1; link-local fe80::1%eth0 and multicast 224.0.0.251",
        'Build 1.15.0.10; 订单号：420106197803040497; ORDER_ID = "500103200104254343"',
        "The password is required. DB_PASSWORD_FILE=/run/secrets/db PASSWORD_MIN_LENGTH=8 TOKEN_EXPIRY=3600",
    ],
)
def test_lookalikes_survive(text: str) -> None:
    assert SCRUB.scrub(text) == (text, {})


def test_validators() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert cn_id_ok("11010519491231002X") and not cn_id_ok("11010519491331002X")  # month 13


def test_counts_by_type_and_entity_subset() -> None:
    text = "a@example.com b@example.com (555) 123-4567"
    assert SCRUB.scrub(text)[1] == {"EMAIL": 2, "PHONE": 1}
    only_phones = Scrubber(entities=("PHONE",))
    assert only_phones.scrub(text)[0] == "a@example.com b@example.com <PHONE>"
    with pytest.raises(ValueError, match="unknown PII entities"):
        Scrubber(entities=("EMAIL", "SHOE_SIZE"))


def test_huge_and_degenerate_texts() -> None:
    assert SCRUB.scrub("") == ("", {})
    assert SCRUB.scrub("!?" * 1000) == ("!?" * 1000, {})
    big = ("word 12 " * 1_000_000) + "x@example.com"
    out, counts = SCRUB.scrub(big)
    assert counts == {"EMAIL": 1} and out.endswith("<EMAIL>")


def test_ip_scopes_kept_are_configurable() -> None:
    text = "public 8.8.8.8, internal 10.1.2.3, loopback 127.0.0.1"
    assert SCRUB.scrub(text)[0] == "public <IP_ADDRESS>, internal <IP_ADDRESS>, loopback 127.0.0.1"
    keep_private = Scrubber(keep_ip_scopes=("loopback", "private"))
    assert keep_private.scrub(text)[0] == "public <IP_ADDRESS>, internal 10.1.2.3, loopback 127.0.0.1"
    with pytest.raises(ValueError, match="unknown IP scopes"):
        Scrubber(keep_ip_scopes=("intranet",))
