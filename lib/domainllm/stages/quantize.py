"""Stage `quantize`: the 8- and 4-bit variants of the version the gate just promoted
(`quantize.variants`), exported in the quantization environment, each stored in the registry
and registered as a version of `<spec name>-<variant>` with its lineage (the source version,
the method, the libraries and the device) and the alias `champion`. Variants are side
outputs: one that this machine cannot export (a method that needs a GPU, a kernel that
crashes) is recorded as failed with the library's reason or the crash's evidence, in the
manifest, `variants.md` and MLflow, and the stage goes on with the others."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import tempfile
from typing import Any, ClassVar

from domainllm.capabilities.machine import describe
from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageDefaults, StageResult
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)

VARIANTS_DIR = "variants"
TAG_SOURCE = "domainllm.quantized_from"


class QuantizeStage(StageDefaults):
    name: ClassVar[str] = "quantize"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("gate", "mix")

    def config(self, spec: Spec) -> dict[str, Any]:
        cfg = spec.quantize
        return {"quantize": cfg.model_dump(mode="json", include={"enabled", "variants", "ignore", "calibration", "gguf"})}

    def run(self, ctx: StageContext) -> StageResult:
        import mlflow

        from domainllm.quant.runner import QuantEnvMissing, run_worker
        from domainllm.stages.models import local_model

        cfg = ctx.spec.quantize
        if not cfg.enabled or not cfg.variants:
            log.info("quantize: off (quantize.enabled)")
            return StageResult(info={"enabled": False})
        source, version = self._source(ctx)
        with local_model(source) as model, tempfile.TemporaryDirectory(prefix="domainllm-quant-") as tmp, \
                ctx.out.local_dir(VARIANTS_DIR) as out:  # fmt: skip
            job = {"model": model, "out": out, "variants": [v.model_dump(mode="json") for v in cfg.variants],
                   "ignore": list(cfg.ignore), "seq_len": cfg.calibration.seq_len, "pre_tokenizer": cfg.gguf.pre_tokenizer,
                   "calibration": self._calibration(ctx, f"{tmp}/calibration.jsonl")}  # fmt: skip
            log.info("quantize: %d variant(s) of %s version %s", len(cfg.variants), ctx.spec.name, version)
            try:
                results = run_worker(job, f"{tmp}/job.json")
            except (QuantEnvMissing, RuntimeError) as exc:
                raise StageError(f"quantize: {exc}") from None
        variants = results["variants"]
        for r in variants:
            mlflow.set_tag(f"domainllm.export.{r['name']}", r["status"])
            if r["status"] == "failed":
                log.warning("quantize: %s could not be exported here: %s", r["name"], r["reason"])
        full_bytes = _folder_bytes(source)
        for r in variants:
            if r["status"] == "ok":
                r["registered"] = self._register(ctx, r, version, results["environment"])
            elif r["status"] == "skipped":
                log.info("quantize: %s skipped: %s", r["name"], r["reason"])
        report = _table(variants, full_bytes)
        log.info("quantize: variants of version %s\n%s", version, report)
        with ctx.out.fs.open(ctx.out.file("variants.md"), "w") as fh:
            fh.write(report)
        with ctx.out.fs.open(ctx.out.file("results.json"), "w") as fh:
            json.dump({**results, "source": source, "source_version": version}, fh, indent=2)
        ok = [r for r in variants if r["status"] == "ok"]
        return StageResult(
            counts={"variants": len(ok), "skipped": sum(r["status"] == "skipped" for r in variants),
                    "failed": sum(r["status"] == "failed" for r in variants)},
            metrics={**{f"{r['name']}.size_mb": r["bytes"] / 2**20 for r in ok},
                     **{f"{r['name']}.seconds": r["seconds"] for r in ok}},
            info={"enabled": True, "source": source, "source_version": version, "full_bytes": full_bytes,
                  "environment": results["environment"],
                  "variants": {r["name"]: {k: r[k] for k in ("status", "reason", "evidence", "format", "bytes", "registered") if k in r}
                               for r in variants}},
            reports=["variants.md"])  # fmt: skip

    def _source(self, ctx: StageContext) -> tuple[str, str]:
        """The promoted model's registry copy and version."""
        from domainllm.evals.registry import champion

        gate = ctx.upstream["gate"].info
        if gate.get("registered_path"):
            return gate["registered_path"], str(gate["version"])
        current = champion(ctx.spec)  # the candidate was already the champion
        if current is None:
            raise StageError("quantize: the gate promoted nothing and there is no champion to quantize")
        return current.model_path, current.version

    def _calibration(self, ctx: StageContext, path: str) -> str | None:
        """A JSONL of domain documents from the mix's training split, for GPTQ/AWQ."""
        cfg = ctx.spec.quantize
        if all(v.format == "gguf" or v.method == "rtn" for v in cfg.variants):
            return None
        texts = sample_domain_texts(ctx.layout.fs, ctx.upstream_dir("mix"), cfg.calibration.samples, cfg.calibration.seed)
        if not texts:
            raise StageError("quantize.calibration: the mix has no domain documents to calibrate GPTQ/AWQ on")
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps({"text": t}) + "\n" for t in texts)
        return path

    def _register(self, ctx: StageContext, result: dict[str, Any], version: str, environment: dict[str, Any]) -> dict[str, str]:
        """Stores the variant once in the registry and registers it as a version of
        `<name>-<variant>` (reusing the version a rerun of the same export registered)."""
        import mlflow
        from mlflow.exceptions import MlflowException

        from domainllm.artifacts.fs import join
        from domainllm.evals.registry import CHAMPION, TAG_FINGERPRINT, TAG_RUN_ID, store_model

        name = f"{ctx.spec.name}-{result['name']}"
        key = f"{ctx.fingerprint}-{result['name']}"
        stored = store_model(ctx.spec, ctx.layout.url(join(ctx.out.path, VARIANTS_DIR, result["path"])), _short(key), name=name)
        client = mlflow.MlflowClient()
        with contextlib.suppress(MlflowException):  # registered by an earlier run
            client.create_registered_model(name, description=f"quantized variants of {ctx.spec.name}")
        found = client.search_model_versions(f"name = '{name}' and tags.`{TAG_FINGERPRINT}` = '{_short(key)}'")
        if found:
            mv = found[0]
        else:
            variant = next(v for v in ctx.spec.quantize.variants if v.name == result["name"])
            run = mlflow.active_run()
            tags = {TAG_RUN_ID: ctx.run_id, TAG_FINGERPRINT: _short(key), TAG_SOURCE: f"{ctx.spec.name}/{version}",
                    "domainllm.format": variant.format, "domainllm.device": environment.get("device", ""),
                    **{f"domainllm.quant.{k}": str(v) for k, v in variant.model_dump(exclude={"name", "format"}).items() if v is not None},
                    **{f"domainllm.lib.{k}": v for k, v in environment.get("versions", {}).items()}}  # fmt: skip
            mv = client.create_model_version(name, source=stored, run_id=run.info.run_id if run else None, tags=tags)
        client.set_registered_model_alias(name, CHAMPION, mv.version)
        log.info("quantize: %s registered as %s version %s (%s)", result["name"], name, mv.version, stored)
        return {"name": name, "version": str(mv.version), "path": stored}


def _short(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:16]


def sample_domain_texts(fs, mix_dir: str, samples: int, seed: int) -> list[str]:
    """Up to `samples` domain documents of the mix's training parts, drawn with `seed`."""
    import pyarrow.parquet as pq

    from domainllm.artifacts.fs import join

    texts: list[str] = []
    for part in sorted(fs.glob(join(mix_dir, "part-*.parquet"))):
        with fs.open(part, "rb") as fh:
            table = pq.read_table(fh, columns=["text", "domain"])
        texts.extend(t for t, d in zip(table.column("text").to_pylist(), table.column("domain").to_pylist(), strict=True)
                     if d == "domain" and t.strip())  # fmt: skip
        if len(texts) >= 20 * samples:  # enough to draw from
            break
    return random.Random(seed).sample(texts, min(samples, len(texts)))


def _folder_bytes(location: str) -> int:
    from domainllm.artifacts.fs import url_to_fs

    fs, path = url_to_fs(location)
    return sum(fs.du(path, total=False).values()) if fs.exists(path) else 0


def _table(variants: list[dict[str, Any]], full_bytes: int) -> str:
    rows = ["| variant | format | status | size MB | of full size | seconds | registered / reason |", "|---|---|---|---|---|---|---|",
            f"| full | safetensors | - | {full_bytes / 2**20:.1f} | 100% | - | - |"]  # fmt: skip
    for r in variants:
        if r["status"] == "ok":
            reg = r.get("registered", {})
            rows.append(f"| {r['name']} | {r['format']} | ok | {r['bytes'] / 2**20:.1f} | {r['bytes'] / max(full_bytes, 1):.0%} "
                        f"| {r['seconds']:.1f} | {reg.get('name', '')} v{reg.get('version', '')} |")  # fmt: skip
        else:
            reason = " ".join(r.get("reason", "").split()).replace("|", "/")[:300]
            rows.append(f"| {r['name']} | {r['format']} | {r['status']} | - | - | - | {reason} |")
    return f"Exported on {describe()}\n\n" + "\n".join(rows) + "\n"
