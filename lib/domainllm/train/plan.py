"""Which DeepSpeed ZeRO stage and offload fit a model on given hardware.

Model-state memory per GPU and per node comes from DeepSpeed's own estimators (ZeRO-2 and
ZeRO-3, with and without offload); ZeRO-0 and ZeRO-1 use the same accounting those
estimators use (2 bytes of bf16 weights + 18 bytes a parameter: 2 + 4 bytes of gradients,
4 of fp32 master weights, 8 of Adam moments), ZeRO-1 sharding the 12 bytes of optimizer
state across GPUs. Activations are added with gradient
checkpointing (one bf16 hidden state per layer and token kept, plus one layer's working set
recomputed). An option fits when its GPU total is within `headroom` of the GPU memory and its
CPU total within the node's memory. Options are listed fastest first; the recommendation is
the first that fits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

GiB = 1024**3


@dataclass(frozen=True)
class ModelSize:
    params: int
    largest_layer_params: int
    hidden_size: int | None = None
    num_layers: int | None = None

    @classmethod
    def from_config_dir(cls, path: str) -> ModelSize:
        """Counted exactly on the meta device: no weights are loaded."""
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(path)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        params = sum({p.data_ptr() if p.device.type != "meta" else id(p): p.numel() for p in model.parameters()}.values())
        largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
        return cls(params, largest, getattr(config, "hidden_size", None), getattr(config, "num_hidden_layers", None))

    @classmethod
    def from_count(cls, params: float, largest_layer_params: float | None = None) -> ModelSize:
        """From a parameter count alone: the largest layer is taken as 3% of the model (the
        embedding of Llama-style models is 2-5%) unless given."""
        return cls(int(params), int(largest_layer_params or params * 0.03))


@dataclass(frozen=True)
class Hardware:
    gpu_mem_bytes: int
    gpus_per_node: int = 1
    nodes: int = 1
    cpu_mem_bytes: int | None = None
    """Per node; None: not checked."""
    nvme: bool = False
    """Whether nodes have local NVMe for ZeRO-Infinity."""


@dataclass(frozen=True)
class Option:
    name: str
    zero_stage: int
    offload_optimizer: str  # none | cpu | nvme
    offload_params: str  # none | cpu | nvme
    gpu_bytes: int
    cpu_bytes: int
    fits: bool
    why: str

    def row(self) -> dict:
        d = asdict(self)
        d["gpu_gib"] = round(self.gpu_bytes / GiB, 2)
        d["cpu_gib"] = round(self.cpu_bytes / GiB, 2)
        return d


def activation_bytes(size: ModelSize, seq_len: int, micro_batch: int) -> int:
    """With gradient checkpointing: the bf16 layer inputs kept for every layer, plus one
    layer's recomputed working set (~34 bytes per hidden unit and token, Korthikanti et al.)."""
    if not size.hidden_size or not size.num_layers:
        # without a config: hidden ~ sqrt(params / (12 * layers)) for a 32-layer shape
        layers = 32
        hidden = int((size.params / (12 * layers)) ** 0.5)
    else:
        layers, hidden = size.num_layers, size.hidden_size
    tokens = seq_len * micro_batch
    return int(tokens * hidden * (2 * layers + 34))


def options(size: ModelSize, hw: Hardware, *, seq_len: int = 2048, micro_batch: int = 1,
            headroom: float = 0.9) -> list[Option]:  # fmt: skip
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    p, n = size.params, hw.gpus_per_node * hw.nodes
    act = activation_bytes(size, seq_len, micro_batch)
    # (name, stage, offload optimizer, offload params, cpu bytes per node, gpu bytes per GPU)
    raw: list[tuple[str, int, str, str, int, int]] = [
        ("ZeRO-0 (DDP)", 0, "none", "none", 0, 20 * p),
        ("ZeRO-1", 1, "none", "none", 0, 8 * p + 12 * p // n),
    ]
    cpu, gpu = estimate_zero2_model_states_mem_needs(p, hw.gpus_per_node, hw.nodes, cpu_offload=False)
    raw.append(("ZeRO-2", 2, "none", "none", cpu, gpu))
    cpu, gpu, _ = estimate_zero3_model_states_mem_needs(p, size.largest_layer_params, hw.gpus_per_node, hw.nodes,
                                                        cpu_offload=False, cpu_offload_params=False)  # fmt: skip
    raw.append(("ZeRO-3", 3, "none", "none", cpu, gpu))
    cpu, gpu = estimate_zero2_model_states_mem_needs(p, hw.gpus_per_node, hw.nodes, cpu_offload=True)
    raw.append(("ZeRO-2 + CPU offload (optimizer)", 2, "cpu", "none", cpu, gpu))
    cpu, gpu, _ = estimate_zero3_model_states_mem_needs(p, size.largest_layer_params, hw.gpus_per_node, hw.nodes,
                                                        cpu_offload=True, cpu_offload_params=False)  # fmt: skip
    raw.append(("ZeRO-3 + CPU offload (optimizer)", 3, "cpu", "none", cpu, gpu))
    cpu, gpu, _ = estimate_zero3_model_states_mem_needs(p, size.largest_layer_params, hw.gpus_per_node, hw.nodes,
                                                        cpu_offload=True, cpu_offload_params=True)  # fmt: skip
    raw.append(("ZeRO-3 + CPU offload (optimizer + params)", 3, "cpu", "cpu", cpu, gpu))
    # ZeRO-Infinity: optimizer states and params on NVMe; the CPU holds staging buffers
    # (DeepSpeed's zero_init estimate with params offloaded, minus the states now on NVMe).
    raw.append(("ZeRO-3 + NVMe offload (ZeRO-Infinity)", 3, "nvme", "nvme", int(cpu * 2 / 18), gpu))

    out = []
    for name, stage, off_opt, off_par, cpu_b, gpu_b in raw:
        gpu_total = gpu_b + act
        reasons = []
        if gpu_total > headroom * hw.gpu_mem_bytes:
            reasons.append(f"GPU needs {gpu_total / GiB:.1f} GiB > {headroom:.0%} of {hw.gpu_mem_bytes / GiB:.0f} GiB")
        if hw.cpu_mem_bytes is not None and cpu_b > headroom * hw.cpu_mem_bytes:
            reasons.append(f"CPU needs {cpu_b / GiB:.1f} GiB > {headroom:.0%} of {hw.cpu_mem_bytes / GiB:.0f} GiB")
        if off_opt == "nvme" and not hw.nvme:
            reasons.append("no NVMe on the nodes")
        out.append(Option(name, stage, off_opt, off_par, gpu_total, cpu_b, not reasons, "; ".join(reasons) or "fits"))
    return out


def recommend(opts: list[Option]) -> Option | None:
    """The first option that fits: options are ordered fastest first."""
    return next((o for o in opts if o.fits), None)
