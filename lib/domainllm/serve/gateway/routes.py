"""Where requests go: named backends (an OpenAI-compatible base URL, the model version it
serves, a weight). The table lives in a JSON file that the rollout rewrites (atomically);
the gateway rereads it when it changes, so moving traffic needs no restart."""

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


def write_routes(path: Path, routes: list[Route]) -> None:
    validate(routes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"routes": [asdict(r) for r in routes]}, indent=2))
    os.replace(tmp, path)


def read_routes(path: Path) -> list[Route]:
    try:
        data = json.loads(path.read_text())
        return validate([Route(**r) for r in data["routes"]])
    except FileNotFoundError:
        raise RoutesError(f"no routes file at {path}: deploy a model first (`domainllm serve`)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise RoutesError(f"{path}: not a routes file ({exc})") from None


class RouteTable:
    """The routes of a file, reread at most every `recheck_s` when the file changed."""

    def __init__(self, path: Path, *, recheck_s: float = 0.5, rng: random.Random | None = None) -> None:
        self.path, self.recheck_s = path, recheck_s
        self.rng = rng or random.Random()
        self._version: tuple[int, int] | None = None
        self._checked = 0.0
        self.routes: list[Route] = []
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
            self.routes = read_routes(self.path) if version is not None else []
            self._version = version

    def pick(self) -> Route:
        self.refresh()
        live = [r for r in self.routes if r.weight > 0]
        if not live:
            raise RoutesError("no route has traffic: deploy a model or set a weight above 0")
        return self.rng.choices(live, weights=[r.weight for r in live])[0]
