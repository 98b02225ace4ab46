"""Choosing the checkpoint to resume from: the newest complete one of the same fingerprint;
a checkpoint cut off by a kill while saving is removed, never resumed."""

from __future__ import annotations

import json
from pathlib import Path

from domainllm.train.checkpoints import FINGERPRINT_FILE, prepare_checkpoints


def _checkpoint(root: Path, step: int, state: str | None) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_the_newest_complete_checkpoint_wins_and_cut_off_ones_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / FINGERPRINT_FILE).write_text("fp1")
    _checkpoint(root, 4, json.dumps({"global_step": 4}))
    _checkpoint(root, 8, json.dumps({"global_step": 8}))
    no_state = _checkpoint(root, 12, None)  # killed before the trainer state was written
    cut_off = _checkpoint(root, 16, '{"global_st')  # killed while writing it

    assert prepare_checkpoints(str(root), "fp1") == str(root / "checkpoint-8")
    assert not no_state.exists() and not cut_off.exists()
    assert (root / "checkpoint-4").exists()


def test_checkpoints_of_another_configuration_are_not_resumed(tmp_path: Path) -> None:
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / FINGERPRINT_FILE).write_text("fp1")
    _checkpoint(root, 4, json.dumps({"global_step": 4}))

    assert prepare_checkpoints(str(root), "fp2") is None
    assert not (root / "checkpoint-4").exists()
    assert (root / FINGERPRINT_FILE).read_text() == "fp2"


def test_no_checkpoints_means_a_fresh_start(tmp_path: Path) -> None:
    assert prepare_checkpoints(str(tmp_path / "new"), "fp") is None
    assert (tmp_path / "new" / FINGERPRINT_FILE).exists()
