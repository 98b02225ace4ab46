"""The stage catalogue as plain data, importable without any heavy dependency."""

# Stage name -> logical image it runs in (runtime.images). Order is pipeline order.
STAGE_IMAGES: dict[str, str] = {
    "ingest": "worker",
    "quality": "worker",
    "dedup_signatures": "worker",
    "dedup_clusters": "worker",
    "dedup": "worker",
    "pii": "worker",
    "base_model": "trainer",
}

STAGE_NAMES: tuple[str, ...] = tuple(STAGE_IMAGES)

SHARDED_STAGES: frozenset[str] = frozenset({"quality", "dedup_signatures", "dedup", "pii"})
"""Stages that run as one task per shard (`data.shards`) plus a collect task."""
