"""Where this process sits in a multi-process job (torchrun, DeepSpeed's launcher or a
Kubernetes indexed Job): rank and world size from the environment, rank 0 the writer."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank_zero() -> bool:
    """Only rank 0 publishes outputs, writes the manifest and logs to MLflow."""
    return rank() == 0


def init_process_group() -> None:
    """Joins the job's process group (rendezvous from MASTER_ADDR/MASTER_PORT, RANK,
    WORLD_SIZE): NCCL on GPUs, gloo on CPU. Through DeepSpeed, so a second model (the DPO
    reference) loaded under ZeRO-3 finds the group too. A no-op in a single process."""
    if world_size() <= 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    import warnings

    import deepspeed

    # DeepSpeed calls these once per bucket; the deprecation would flood the task log
    warnings.filterwarnings("ignore", message=r".*torch\.distributed\.\w+` is deprecated", category=FutureWarning)
    deepspeed.init_distributed(dist_backend=backend)
    log.info("rank %d of %d joined the process group (%s, master %s:%s)", rank(), world_size(), backend,
             os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"))  # fmt: skip


def barrier() -> None:
    """Waits for every rank (a no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
