"""The stage catalogue as plain data, importable without any heavy dependency."""

# Stage name -> logical image it runs in (runtime.images). Order is pipeline order.
STAGE_IMAGES: dict[str, str] = {
    "ingest": "worker",
    "quality": "worker",
    "base_model": "trainer",
}

STAGE_NAMES: tuple[str, ...] = tuple(STAGE_IMAGES)
