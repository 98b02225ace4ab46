"""Names and label values from any run id or stage name."""

from __future__ import annotations

import re

from domainllm.k8s.names import label_value, object_name, random_suffix

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def test_object_names_are_dns_labels_within_their_limit() -> None:
    assert object_name("perl-assistant", "cpt", "demo", suffix="x1b2c") == "perl-assistant-cpt-demo-x1b2c"
    long = object_name("Perl_Assistant", "dedup_signatures-shard12", "2026-11-26T02:00:00+00:00_manual" * 3, suffix="abcde")
    assert len(long) <= 63 and _DNS1035.match(long) and long.endswith("-abcde")
    assert object_name("7days", max_len=52).startswith("dl-7days")  # Services must start with a letter
    a = object_name("p", "x" * 100)
    b = object_name("p", "x" * 99 + "y")
    assert a != b and len(a) <= 63  # cut names keep a hash of the whole


def test_label_values() -> None:
    assert label_value("demo") == "demo"
    value = label_value("run id with spaces/and:colons" + "z" * 60)
    assert len(value) <= 63 and _LABEL.match(value)
    assert label_value("a" * 70) != label_value("a" * 71)


def test_random_suffixes_look_like_generated_names() -> None:
    suffixes = {random_suffix() for _ in range(50)}
    assert len(suffixes) > 45 and all(re.fullmatch(r"[b-z2-9]{5}", s) for s in suffixes)
