"""The probe cache: an outcome is kept for this machine and subject, a transient one is not,
a changed subject (another vLLM, another model shape) is probed again, and the record says
where and when it was found out."""

from __future__ import annotations

import json
from pathlib import Path

from domainllm.capabilities import Outcome, Probes, machine, machine_key
from domainllm.capabilities.machine import describe


def test_outcomes_are_cached_per_machine_and_subject(home: Path) -> None:
    tries: list[str] = []

    def attempt(status: str, transient: bool = False):
        def run() -> Outcome:
            tries.append(status)
            return Outcome(status, reason="" if status == "ok" else "SIGILL", transient=transient)

        return run

    probes = Probes()
    first = probes.run("p", {"lib": "1"}, attempt("failed"))
    assert first["status"] == "failed" and not first["cached"] and first["machine"] == machine()
    assert probes.run("p", {"lib": "1"}, attempt("ok")) == {**first, "cached": True} and tries == ["failed"]
    assert probes.run("p", {"lib": "2"}, attempt("ok"))["status"] == "ok" and tries == ["failed", "ok"]
    assert probes.run("p", {"lib": "1"}, attempt("ok"), refresh=True)["status"] == "ok"
    probes.run("q", {}, attempt("failed", transient=True))
    assert probes.run("q", {}, attempt("ok"))["status"] == "ok"  # the transient failure was not kept
    assert {(r["probe"], r["subject"].get("lib"), r["status"]) for r in probes.all()} == {("p", "1", "ok"), ("p", "2", "ok"), ("q", None, "ok")}


def test_an_unreadable_cache_file_is_probed_again(home: Path) -> None:
    probes = Probes()
    probes.run("p", {}, lambda: Outcome("ok"))
    (path,) = probes.root.glob("p-*.json")
    path.write_text("{not json")
    assert probes.run("p", {}, lambda: Outcome("failed", reason="x"))["status"] == "failed"
    assert json.loads(path.read_text())["status"] == "failed"


def test_the_machine_is_described_by_what_kernels_dispatch_on() -> None:
    m = machine()
    assert m["arch"] and m["cpu"] and isinstance(m["flags"], list) and len(machine_key()) == 16
    assert m["cpu"] in describe() and ("GPU" in describe() or m["gpus"])
