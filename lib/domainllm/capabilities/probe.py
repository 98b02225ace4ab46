"""Probe outcomes, cached per machine. A probe tries one thing in a child process (serve this
model with vLLM, export this variant) and reports `ok`, or `failed` with the reason and the
evidence (exit status, the native crash, the log's last lines). The outcome is cached under
$DOMAINLLM_HOME/cache/capabilities, keyed by the machine (machine_key), the probe's name and
its subject (library versions, the model's signature, the settings); a death that says
nothing about the machine (SIGKILL, a timeout) is reported but not cached."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from domainllm.capabilities.machine import describe, machine, machine_key
from domainllm.env import home

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: Literal["ok", "failed"]
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)  # exit_code, exit, crash, log_tail ...
    seconds: float = 0.0
    transient: bool = False  # says nothing about the machine (a timeout, an outside kill): not cached


class Probes:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or home() / "cache" / "capabilities"

    def _path(self, name: str, subject: dict[str, Any]) -> Path:
        key = hashlib.sha256(json.dumps([machine_key(), name, subject], sort_keys=True).encode()).hexdigest()[:16]
        return self.root / f"{name}-{key}.json"

    def run(self, name: str, subject: dict[str, Any], attempt: Callable[[], Outcome], *, refresh: bool = False) -> dict[str, Any]:
        """The cached outcome of probe `name` on `subject` here, else `attempt()`'s (cached
        unless transient). Returns the record: status, reason, evidence, seconds, machine,
        probed_at, cached."""
        path = self._path(name, subject)
        if not refresh and path.exists():
            try:
                record = json.loads(path.read_text())
                log.info("probe %s: %s on this machine (cached %s)", name, record["status"], record["probed_at"])
                return {**record, "cached": True}
            except (OSError, ValueError, KeyError):
                log.warning("probe %s: unreadable cache file %s, probing again", name, path)
        outcome = attempt()
        record = {"probe": name, "subject": subject, "machine": machine(), "machine_text": describe(),
                  "probed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  **{k: v for k, v in asdict(outcome).items() if k != "transient"}}  # fmt: skip
        if not outcome.transient:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, indent=2))
            os.replace(tmp, path)
        return {**record, "cached": False}

    def all(self) -> list[dict[str, Any]]:
        """Every cached outcome for this machine, oldest first."""
        mine = machine()
        records = []
        for path in sorted(self.root.glob("*.json")) if self.root.exists() else []:
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if record.get("machine") == mine:
                records.append(record)
        return sorted(records, key=lambda r: r.get("probed_at", ""))
