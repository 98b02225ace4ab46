"""Routes: validated, picked by weight, reread when the rollout rewrites the file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from domainllm.serve.gateway.routes import Route, RoutesError, RouteTable, read_routes, write_routes


def test_weights_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    write_routes(path, [Route("stable", "http://a/v1", "1", 90), Route("canary", "http://b/v1", "2", 10)])
    table = RouteTable(path, recheck_s=0, rng=random.Random(0))
    picks = [table.pick().name for _ in range(2000)]
    assert 0.07 < picks.count("canary") / len(picks) < 0.13
    write_routes(path, [Route("stable", "http://a/v1", "1", 0), Route("canary", "http://b/v1", "2", 100)])
    os.utime(path, ns=(table._version[1], table._version[1]))  # even with the old mtime: a rewrite is a new inode
    assert {table.pick().name for _ in range(50)} == {"canary"}


def test_bad_tables_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    with pytest.raises(RoutesError, match="unique"):
        write_routes(path, [Route("a", "u", "1", 1), Route("a", "u", "2", 1)])
    with pytest.raises(RoutesError, match="above 0"):
        write_routes(path, [Route("a", "u", "1", 0)])
    with pytest.raises(RoutesError, match="deploy a model first"):
        read_routes(tmp_path / "none.json")
    path.write_text("{}")
    with pytest.raises(RoutesError, match="not a routes file"):
        read_routes(path)
    assert RouteTable(tmp_path / "none.json").routes == []
    with pytest.raises(RoutesError, match="no route has traffic"):
        RouteTable(tmp_path / "none.json").pick()
