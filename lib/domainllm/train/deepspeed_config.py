"""DeepSpeed configs generated from the spec (and the planner's recommendation), in the form
the Hugging Face Trainer integration takes: batch sizes, clipping and optimizer
hyper-parameters are `auto`, so the recipe's TrainingArguments stay the one source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domainllm.spec.training import DeepSpeedConfig


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
