"""Progress lines for long work: throttled, with rates, to the log (and so to Airflow)."""

from __future__ import annotations

import logging
import time


class Progress:
    def __init__(self, logger: logging.Logger, label: str, every_s: float = 5.0) -> None:
        self.logger, self.label, self.every_s = logger, label, every_s
        self.start = self._last = time.monotonic()

    def update(self, **counters: float) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.log(**counters)

    def log(self, **counters: float) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        parts = []
        for name, value in counters.items():
            if name.endswith("bytes"):
                parts.append(f"{value / 1e6:,.1f} MB ({value / 1e6 / elapsed:,.1f} MB/s)")
            elif isinstance(value, float) and not value.is_integer():
                parts.append(f"{name}={value:.4g}")
            else:
                parts.append(f"{name}={int(value):,}")
        self.logger.info("%s: %s [%.0fs]", self.label, " ".join(parts), elapsed)
