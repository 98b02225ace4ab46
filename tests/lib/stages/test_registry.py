"""The plain-data stage catalogue (names.py, read by the DAG) matches the implementations."""

from __future__ import annotations

from domainllm.stages.names import SHARDED_STAGES, STAGE_IMAGES, STAGE_NAMES, STAGE_REQUIRES
from domainllm.stages.registry import get_stage


def test_catalogue_matches_the_stage_classes() -> None:
    assert set(STAGE_REQUIRES) == set(STAGE_IMAGES)
    for name in STAGE_NAMES:
        stage = get_stage(name)
        assert stage.name == name
        assert tuple(stage.requires) == STAGE_REQUIRES[name], name
        assert bool(getattr(stage, "sharded", False)) == (name in SHARDED_STAGES), name
        # pipeline order lists every stage after the stages it reads
        assert all(STAGE_NAMES.index(dep) < STAGE_NAMES.index(name) for dep in STAGE_REQUIRES[name])
