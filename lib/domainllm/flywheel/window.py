"""The period a flywheel run harvests: `[start, end)` in UTC, and the log partitions
(`<kind>/date=YYYY-MM-DD/hour=HH/`) that hold it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

UTC = dt.UTC


class WindowError(ValueError):
    pass


def _parse(value: str, what: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(f"{what} {value!r} is not a date or time; give e.g. 2026-11-25 or 2026-11-25T06:00") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def parse(cls, start: str, end: str) -> Window:
        window = cls(_parse(start, "start"), _parse(end, "end"))
        if window.end <= window.start:
            raise WindowError(f"the window must end after it starts (start {start}, end {end})")
        if window.end - window.start > dt.timedelta(days=366):
            raise WindowError(f"a window spans at most a year (start {start}, end {end}); run the flywheel per period")
        return window

    def contains(self, epoch_s: float) -> bool:
        return self.start.timestamp() <= epoch_s < self.end.timestamp()

    def hours(self, until: dt.datetime | None = None) -> list[str]:
        """Partition paths `date=YYYY-MM-DD/hour=HH` from the window's first hour to its last
        (or to `until`: feedback on the window's answers may come later)."""
        t = self.start.replace(minute=0, second=0, microsecond=0)
        stop = until or self.end
        out = []
        while t < stop:
            out.append(f"date={t:%Y-%m-%d}/hour={t:%H}")
            t += dt.timedelta(hours=1)
        return out

    @property
    def slug(self) -> str:
        """For run ids: `20261125T0000-20261126T0000`."""
        return f"{self.start:%Y%m%dT%H%M}-{self.end:%Y%m%dT%H%M}"

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def _iso(value) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def run_window(params: dict, interval_start=None, interval_end=None, run_after=None) -> dict[str, str]:
    """The data_flywheel run's window as run parameters: the form's `start`/`end` when given,
    else the run's data interval (a scheduled run: the day before), else the 24 hours before
    the run was triggered."""
    start, end = params.get("start") or _iso(interval_start), params.get("end") or _iso(interval_end)
    if not (start and end) or start == end:
        after = _parse(_iso(run_after) or dt.datetime.now(UTC).isoformat(), "run_after")
        start, end = start or (after - dt.timedelta(days=1)).isoformat(), end or after.isoformat()
        if start == end:
            start = (_parse(end, "end") - dt.timedelta(days=1)).isoformat()
    window = Window.parse(start, end)
    return {"window_start": window.start.isoformat(), "window_end": window.end.isoformat()}


def window_run_id(window: dict[str, str]) -> str:
    """`flywheel-20261125T0200-20261126T0200`: one run per window (rerunning a window continues
    its run)."""
    return f"flywheel-{Window.parse(window['window_start'], window['window_end']).slug}"
