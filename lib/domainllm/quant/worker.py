"""`python -m domainllm.quant.worker JOB.json`: exports every variant of a job, in the
quantization environment, and writes `results.json` (rewritten after each variant, so a
killed worker leaves a record of what finished).

The job (written by the `quantize` stage): `model` (a local folder), `out` (a folder: one
sub-folder per variant), `variants` (the spec's `quantize.variants`), `ignore`,
`calibration` (a JSONL file of {"text"}), `seq_len`, `pre_tokenizer`.
Each result: name, status (`ok`, `skipped` with the reason when a tool it needs is not
installed, `failed` with the error: a method this machine cannot run fails here, with the
library's own words), seconds, bytes. `running` names the variant in progress, so whoever
started a worker that died (a native crash kills the process) knows which variant killed it.
Exit status 1 when a variant failed, 0 otherwise."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
from importlib import metadata
from typing import Any

from domainllm.quant.formats import Variant

log = logging.getLogger("domainllm.quant")
RESULTS = "results.json"
_PACKAGES = ("llmcompressor", "compressed-tensors", "transformers", "torch", "gguf", "llama-cpp-python")


def environment() -> dict[str, Any]:
    """Library versions and the device: recorded with every variant's lineage."""
    import torch

    versions = {}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"versions": versions, "device": device}


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def export_one(job: dict[str, Any], variant: Variant, texts: list[str]) -> dict[str, Any]:
    from domainllm.quant import compressed, gguf_export

    out = os.path.join(job["out"], variant["name"])
    result: dict[str, Any] = {"name": variant["name"], "format": variant["format"], "path": variant["name"]}
    try:
        if variant["format"] == "gguf":
            gguf_export.export(job["model"], variant, out, pre_tokenizer=job.get("pre_tokenizer"))
        else:
            compressed.export(job["model"], variant, out, ignore=list(job.get("ignore", [])), texts=texts,
                              seq_len=int(job.get("seq_len", 512)))  # fmt: skip
    except gguf_export.MissingTool as exc:
        shutil.rmtree(out, ignore_errors=True)
        return {**result, "status": "skipped", "reason": str(exc)}
    except Exception as exc:  # recorded per variant: a side output, the pipeline goes on
        traceback.print_exc()
        shutil.rmtree(out, ignore_errors=True)
        return {**result, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    return {**result, "status": "ok", "bytes": _dir_bytes(out)}


def read_texts(path: str | None) -> list[str]:
    if not path:
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


def write_results(out: str, results: list[dict[str, Any]], env: dict[str, Any], running: str | None = None) -> None:
    tmp = os.path.join(out, RESULTS + ".tmp")
    with open(tmp, "w") as fh:
        json.dump({"environment": env, "variants": results, "running": running}, fh, indent=2)
    os.replace(tmp, os.path.join(out, RESULTS))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
    with open((argv or sys.argv[1:])[0]) as fh:
        job = json.load(fh)
    env = environment()
    log.info("quantizing %s on %s (%s)", job["model"], env["device"],
             ", ".join(f"{k} {v}" for k, v in env["versions"].items()))  # fmt: skip
    texts = read_texts(job.get("calibration"))
    os.makedirs(job["out"], exist_ok=True)
    results: list[dict[str, Any]] = []
    for i, variant in enumerate(job["variants"], 1):
        start = time.monotonic()
        log.info("[%d/%d] %s: exporting", i, len(job["variants"]), variant["name"])
        write_results(job["out"], results, env, running=variant["name"])
        result = export_one(job, variant, texts)
        result["seconds"] = round(time.monotonic() - start, 2)
        log.info("[%d/%d] %s: %s in %.1f s%s", i, len(job["variants"]), variant["name"], result["status"],
                 result["seconds"], f" ({result['reason']})" if result.get("reason") else "")  # fmt: skip
        results.append(result)
        write_results(job["out"], results, env)
    return 1 if any(r["status"] == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
