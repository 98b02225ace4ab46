"""DeepSpeed configs generated from the spec (and the planner's recommendation), in the form
the Hugging Face Trainer integration takes: batch sizes, clipping and optimizer
hyper-parameters are `auto`, so the recipe's TrainingArguments stay the one source."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from domainllm.spec.training import DeepSpeedConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZeroChoice:
    stage: int
    offload_optimizer: str = "none"
    offload_params: str = "none"

    @property
    def label(self) -> str:
        offload = [f"{what} on {dev}" for what, dev in (("optimizer", self.offload_optimizer),
                                                       ("params", self.offload_params)) if dev != "none"]  # fmt: skip
        return f"ZeRO-{self.stage}" + (f" ({', '.join(offload)})" if offload else "")


def choose(ds: DeepSpeedConfig, recommended: Any | None = None) -> ZeroChoice:
    """The spec's setting, or with `zero_stage: auto` the planner's recommendation (an
    `Option` from domainllm.train.plan), or ZeRO-0 when there is none."""
    if ds.zero_stage != "auto":
        return ZeroChoice(int(ds.zero_stage), ds.offload_optimizer, ds.offload_params)
    if recommended is None:
        return ZeroChoice(0)
    return ZeroChoice(recommended.zero_stage, recommended.offload_optimizer, recommended.offload_params)


def _offload(device: str, nvme_path: str) -> dict[str, Any]:
    out: dict[str, Any] = {"device": device, "pin_memory": device != "none"}
    if device == "nvme":
        out["nvme_path"] = nvme_path
    return out


def deepspeed_config(choice: ZeroChoice, *, bf16: bool, nvme_path: str = "/local_nvme") -> dict[str, Any]:
    zero: dict[str, Any] = {"stage": choice.stage}
    if choice.stage >= 1:
        zero.update(overlap_comm=True, contiguous_gradients=True, reduce_bucket_size="auto")
    if choice.offload_optimizer != "none":
        zero["offload_optimizer"] = _offload(choice.offload_optimizer, nvme_path)
    if choice.stage == 3:
        zero.update(
            stage3_prefetch_bucket_size="auto",
            stage3_param_persistence_threshold="auto",
            stage3_gather_16bit_weights_on_model_save=True,  # save_pretrained writes a consolidated model
        )
        if choice.offload_params != "none":
            zero["offload_param"] = _offload(choice.offload_params, nvme_path)
    return {
        "bf16": {"enabled": bf16},
        "zero_optimization": zero,
        "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}},
        "gradient_clipping": "auto",
        "gradient_accumulation_steps": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "steps_per_print": 1_000_000,  # progress and metrics come from the Trainer's logging
        "wall_clock_breakdown": False,
    }


def node_memory_bytes() -> int:
    """This node's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resolve(ds: DeepSpeedConfig, model_path: str, *, seq_len: int, micro_batch: int, bf16: bool) -> dict[str, Any] | None:
    """The DeepSpeed config a training stage runs with, or None for plain PyTorch.

    An explicit `zero_stage` is used as written. With `auto`, on GPUs the planner picks the
    fastest choice that fits this model on this job's GPUs (`LOCAL_WORLD_SIZE` per node,
    `WORLD_SIZE` in all); on CPU, or when plain data parallelism fits, DeepSpeed stays off."""
    if ds.zero_stage != "auto":
        choice = choose(ds)
        log.info("DeepSpeed: %s (from the spec)", choice.label)
        return deepspeed_config(choice, bf16=bf16, nvme_path=ds.nvme_path)
    import torch

    if not torch.cuda.is_available():
        log.info("DeepSpeed: off (zero_stage auto, no GPU)")
        return None
    from domainllm.train.plan import Hardware, ModelSize, options, recommend

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    hw = Hardware(gpu_mem_bytes=props.total_memory, gpus_per_node=per_node, nodes=max(1, world // per_node),
                  cpu_mem_bytes=node_memory_bytes(),
                  nvme=os.path.isdir(ds.nvme_path))  # fmt: skip
    best = recommend(options(ModelSize.from_config_dir(model_path), hw, seq_len=seq_len, micro_batch=micro_batch))
    if best is None:
        raise RuntimeError(
            "no ZeRO stage or offload fits this model on this job's GPUs (see `domainllm plan`); "
            "add GPUs or nodes, shorten the sequences or use LoRA"
        )
    choice = choose(ds, best)
    log.info("DeepSpeed: %s, the planner's choice for %d GPU(s) of %.0f GiB", choice.label, world, props.total_memory / 2**30)
    if choice.stage == 0 and world == 1:
        return None
    return deepspeed_config(choice, bf16=bf16, nvme_path=ds.nvme_path)
