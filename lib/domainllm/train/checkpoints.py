"""Resumable checkpoints: a rerun of a killed stage continues from the newest complete one,
but only if it belongs to the very same configuration and data."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "domainllm-fingerprint.txt"
TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last, after weights, optimizer and RNG states
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def is_complete(checkpoint: Path) -> bool:
    """A checkpoint is complete once its trainer state is readable: the Trainer writes it after
    everything else (and under DeepSpeed after every rank's shards), so a run killed while
    saving leaves a folder without it or with a cut-off file."""
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def newest_complete(ckpt_dir: str, *, remove_incomplete: bool) -> str | None:
    """The newest complete `checkpoint-N` under `ckpt_dir`; incomplete ones newer than it are
    removed when asked (a rerun would otherwise trip over them or rotate good ones away)."""
    found = sorted(((int(m.group(1)), p) for p in Path(ckpt_dir).iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))),
                   reverse=True)  # fmt: skip
    for _, path in found:
        if is_complete(path):
            return str(path)
        if remove_incomplete:
            log.warning("removing incomplete checkpoint %s (the run was stopped while saving it)", path)
            shutil.rmtree(path)
    return None


def prepare_checkpoints(ckpt_dir: str, fingerprint: str) -> str | None:
    """The newest complete checkpoint of this very configuration and data, or None. Checkpoints
    of another fingerprint are removed: resuming them would mix two runs."""
    from domainllm.distributed import barrier, is_rank_zero

    rank_zero = is_rank_zero()
    if rank_zero:  # the other ranks wait, then read what rank 0 left
        marker = Path(ckpt_dir, FINGERPRINT_FILE)
        if os.path.isdir(ckpt_dir):
            same = marker.exists() and marker.read_text().strip() == fingerprint
            if not same:
                log.info("checkpoints in %s belong to another configuration; starting fresh", ckpt_dir)
                shutil.rmtree(ckpt_dir)
        os.makedirs(ckpt_dir, exist_ok=True)
        marker.write_text(fingerprint)
        newest_complete(ckpt_dir, remove_incomplete=True)
    barrier()
    resume = newest_complete(ckpt_dir, remove_incomplete=False)
    if resume:
        log.info("resuming from %s", resume)
    return resume
