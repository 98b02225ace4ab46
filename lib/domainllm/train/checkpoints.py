"""Resumable checkpoints: a rerun of a killed stage continues from the newest complete one,
but only if it belongs to the very same configuration and data."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "domainllm-fingerprint.txt"


def prepare_checkpoints(ckpt_dir: str, fingerprint: str) -> str | None:
    """The newest complete checkpoint of this very configuration and data, or None. Checkpoints
    of another fingerprint are removed: resuming them would mix two runs."""
    from transformers.trainer_utils import get_last_checkpoint

    from domainllm.distributed import barrier, is_rank_zero

    if is_rank_zero():  # the other ranks wait, then read what rank 0 left
        marker = Path(ckpt_dir, FINGERPRINT_FILE)
        if os.path.isdir(ckpt_dir):
            same = marker.exists() and marker.read_text().strip() == fingerprint
            if not same:
                log.info("checkpoints in %s belong to another configuration; starting fresh", ckpt_dir)
                shutil.rmtree(ckpt_dir)
        os.makedirs(ckpt_dir, exist_ok=True)
        marker.write_text(fingerprint)
    barrier()
    resume = get_last_checkpoint(ckpt_dir)
    if resume:
        log.info("resuming from %s", resume)
    return resume
