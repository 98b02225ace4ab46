"""Where requests go: named backends (an OpenAI-compatible base URL, the model version it
serves, a weight). The table lives in a JSON file that the rollout rewrites (atomically;
on Kubernetes a ConfigMap mounted into every gateway replica); the gateway rereads it when
it changes, so moving traffic needs no restart. Each table carries a `generation` (the
time it was written, in ms) that every replica reports in its metrics: the rollout waits
until all of them use the table it wrote before it judges a step."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path


class RoutesError(ValueError):
    pass


@dataclass(frozen=True)
class Route:
    name: str
    """The deployment: `stable`, `canary`, ..."""
    base_url: str
    """Ends in /v1."""
    version: str
    weight: float


def validate(routes: list[Route]) -> list[Route]:
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise RoutesError(f"route names must be unique: {names}")
    if any(r.weight < 0 for r in routes):
        raise RoutesError("route weights must be >= 0")
    if routes and sum(r.weight for r in routes) <= 0:
        raise RoutesError("at least one route needs a weight above 0")
    return routes


def new_generation(previous: int = 0) -> int:
    """The time in ms, and always above `previous` (clocks of two writers may differ)."""
    return max(time.time_ns() // 1_000_000, previous + 1)


def routes_document(routes: list[Route], generation: int) -> str:
    """The routes file's text."""
    validate(routes)
    return json.dumps({"generation": generation, "routes": [asdict(r) for r in routes]}, indent=2)


def parse_routes(text: str, where: str) -> tuple[list[Route], int]:
    """(routes, generation) of a routes file's text; a file without a generation is 0."""
    try:
        data = json.loads(text)
        return validate([Route(**r) for r in data["routes"]]), int(data.get("generation") or 0)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RoutesError(f"{where}: not a routes file ({exc})") from None


def write_routes(path: Path, routes: list[Route], generation: int | None = None) -> int:
    """Writes the table (atomically); returns its generation."""
    generation = generation if generation is not None else new_generation()
    text = routes_document(routes, generation)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return generation


def read_routes_generation(path: Path) -> tuple[list[Route], int]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RoutesError(f"no routes file at {path}: deploy a model first (`domainllm serve`)") from None
    return parse_routes(text, str(path))


def read_routes(path: Path) -> list[Route]:
    return read_routes_generation(path)[0]


class RouteTable:
    """The routes of a file, reread at most every `recheck_s` when the file changed."""

    def __init__(self, path: Path, *, recheck_s: float = 0.5, rng: random.Random | None = None) -> None:
        self.path, self.recheck_s = path, recheck_s
        self.rng = rng or random.Random()
        self._version: tuple[int, int] | None = None
        self._checked = 0.0
        self.routes: list[Route] = []
        self.generation = 0
        """The table's generation; 0 without one (or without a file)."""
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.recheck_s:
            return
        self._checked = now
        try:
            st = self.path.stat()
            version = (st.st_ino, st.st_mtime_ns)  # every rewrite is a new file (os.replace): a new inode
        except FileNotFoundError:
            version = None
        if version != self._version:
            self.routes, self.generation = read_routes_generation(self.path) if version is not None else ([], 0)
            self._version = version

    def pick(self) -> Route:
        self.refresh()
        live = [r for r in self.routes if r.weight > 0]
        if not live:
            raise RoutesError("no route has traffic: deploy a model or set a weight above 0")
        return self.rng.choices(live, weights=[r.weight for r in live])[0]
