"""`domainllm plan`: which ZeRO stage and offload fit a model on given GPUs."""

from __future__ import annotations

import argparse
import json
import re

from domainllm.data.records import InputError

_UNITS = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def _count(text: str) -> float:
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmbgt]?)\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number like 7e9, 7B or 350M")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([\d.]+)\s*(gib|gb|g|tib|tb|t|mib|mb|m)?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size like 80GiB or 80G")
    unit = (m.group(2) or "gib")[0]
    return int(float(m.group(1)) * {"m": 1024**2, "g": 1024**3, "t": 1024**4}[unit])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan", help="estimate GPU/CPU memory per ZeRO stage and offload; recommend one",
        description="Example: domainllm plan --params 70B --gpu-mem 80GiB --gpus-per-node 8 --nodes 1 --cpu-mem 1TiB",
    )  # fmt: skip
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="a Hugging Face model or config folder (counted exactly, no weights loaded)")
    model.add_argument("--params", type=_count, help="parameter count, e.g. 7B, 350M, 7e9")
    p.add_argument("--largest-layer", type=_count, help="with --params: parameters of the largest layer")
    p.add_argument("--gpu-mem", type=_bytes, required=True, help="memory of one GPU, e.g. 80GiB")
    p.add_argument("--gpus-per-node", type=int, default=1)
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--cpu-mem", type=_bytes, help="memory of one node, e.g. 1TiB (not checked if omitted)")
    p.add_argument("--nvme", action="store_true", help="nodes have local NVMe for ZeRO-Infinity")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_plan)


def _plan(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import torch

    if not torch.cuda.is_available():  # planning on a laptop: spare DeepSpeed's accelerator probe and its warning
        os.environ.setdefault("DS_ACCELERATOR", "cpu")

    from domainllm.train.plan import GiB, Hardware, ModelSize, options, recommend

    if args.model:
        if not (Path(args.model) / "config.json").is_file():
            raise InputError(f"--model {args.model}: no config.json there (a Hugging Face model or config folder)")
        size = ModelSize.from_config_dir(args.model)
    else:
        size = ModelSize.from_count(args.params, args.largest_layer)
    hw = Hardware(args.gpu_mem, args.gpus_per_node, args.nodes, args.cpu_mem, args.nvme)
    opts = options(size, hw, seq_len=args.seq_len, micro_batch=args.micro_batch)
    best = recommend(opts)
    if args.json:
        print(json.dumps({"params": size.params, "largest_layer_params": size.largest_layer_params,
                          "options": [o.row() for o in opts], "recommended": best.name if best else None}))  # fmt: skip
        return 0 if best else 1
    print(f"model: {size.params / 1e9:.3g}B parameters (largest layer {size.largest_layer_params / 1e6:.3g}M); "
          f"{hw.nodes} node(s) x {hw.gpus_per_node} GPU(s) of {hw.gpu_mem_bytes / GiB:.0f} GiB; "
          f"seq_len {args.seq_len}, micro-batch {args.micro_batch}")  # fmt: skip
    print(f"{'option':<44} {'GPU/GPU':>9} {'CPU/node':>9}  fits")
    for o in opts:
        mark = "<- recommended" if o is best else ("yes" if o.fits else f"no: {o.why}")
        print(f"{o.name:<44} {o.gpu_bytes / GiB:>8.1f}G {o.cpu_bytes / GiB:>8.1f}G  {mark}")
    if best is None:
        print("nothing fits: add GPUs or nodes, use LoRA, or a shorter sequence / smaller micro-batch")
        return 1
    return 0
