"""Stage `kb_index`: the knowledge base. The domain documents as they leave the data
pipeline (deduplicated, PII scrubbed, compliant, decontaminated) are chunked by the embedding
model's tokens (`knowledge.chunking`), embedded, and written to the vector store as a new
version tagged with the run; the manifest keeps the reference the gateway opens. With
`knowledge.eval`, the index is scored on a labelled query set (recall@k, MRR)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from domainllm.spec import Spec
from domainllm.stages.base import StageContext, StageResult
from domainllm.stages.runner import StageError

log = logging.getLogger(__name__)

BATCH_CHUNKS = 512
"""Chunks embedded and written at a time (bounded memory for any corpus size)."""


class KbIndexStage:
    name: ClassVar[str] = "kb_index"
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("decontaminate",)

    def required(self, spec: Spec) -> tuple[str, ...]:
        return self.requires

    def config(self, spec: Spec) -> dict[str, Any]:
        return {"knowledge": spec.knowledge.model_dump(mode="json")}

    def external_inputs(self, spec: Spec) -> dict[str, str]:
        from domainllm.artifacts.fs import folder_fingerprint
        from domainllm.spec.knowledge import BUILTIN_EMBEDDING

        cfg = spec.knowledge
        inputs = {}
        if cfg.enabled and cfg.eval is not None:
            inputs["eval"] = folder_fingerprint(cfg.eval.path)
        if cfg.enabled and cfg.embedding.model != BUILTIN_EMBEDDING:
            inputs["embedding"] = folder_fingerprint(cfg.embedding.model)
        return inputs

    def run(self, ctx: StageContext) -> StageResult:
        from domainllm.knowledge.embedding import Embedder
        from domainllm.knowledge.store import chunk_schema, writer

        cfg = ctx.spec.knowledge
        if not cfg.enabled:
            return StageResult(info={"enabled": False})
        try:
            embedder = Embedder(cfg.embedding.model, cfg.embedding.batch_size)
        except FileNotFoundError as exc:
            raise StageError(str(exc)) from None
        sources = set(cfg.sources) or {s.name for s in ctx.spec.sources if s.domain == "domain"}
        stats = {"documents": 0, "chunks": 0, "chars": 0}
        start = time.monotonic()
        label = f"{ctx.run_id}-{ctx.fingerprint[:12]}"
        try:
            ref = writer(cfg.store, ctx.spec.name, ctx.spec.artifact_root).write(
                label, self._batches(ctx, embedder, sources, stats, start), chunk_schema(embedder.dims))
        except RuntimeError as exc:  # the store refused (connection, password variable)
            raise StageError(f"knowledge.store: {exc}") from None
        if not stats["chunks"]:
            raise StageError(f"knowledge: no document of the sources {sorted(sources)} reached the index; "
                             f"check knowledge.sources and the data stages' reports")  # fmt: skip
        seconds = time.monotonic() - start
        metrics: dict[str, float] = {"chunks_per_s": stats["chunks"] / max(seconds, 1e-9)}
        reports = ["index.md"]
        if cfg.eval is not None:
            metrics.update(self._evaluate(ctx, ref, embedder))
            reports += ["retrieval.md", "retrieval.png"]
        self._report(ctx, ref, stats, metrics, embedder, sources)
        return StageResult(counts={"documents": stats["documents"], "chunks": stats["chunks"]}, metrics=metrics,
                           info={"enabled": True, "store": ref, "sources": sorted(sources),
                                 "embedding": {"model": cfg.embedding.model, "path": embedder.path, "dims": embedder.dims},
                                 "chunking": cfg.chunking.model_dump()},
                           reports=reports)  # fmt: skip

    def _documents(self, ctx: StageContext, sources: set[str]) -> Iterator[dict[str, str]]:
        import pyarrow.parquet as pq

        from domainllm.artifacts.fs import join

        fs = ctx.layout.fs
        for part in sorted(fs.glob(join(ctx.upstream_dir("decontaminate"), "part-*.parquet"))):
            with fs.open(part, "rb") as fh:
                table = pq.read_table(fh, columns=["id", "text", "source", "metadata"])
            for row in table.to_pylist():
                if row["source"] in sources:
                    yield row

    def _batches(self, ctx: StageContext, embedder: Any, sources: set[str], stats: dict[str, int], start: float):
        import pyarrow as pa

        from domainllm.knowledge.chunking import chunk_document
        from domainllm.knowledge.store import chunk_schema

        schema, cfg = chunk_schema(embedder.dims), ctx.spec.knowledge.chunking
        pending: list = []
        last_log = start

        def flush():
            vectors = embedder.encode([c.text for c in pending])
            cols = {"chunk_id": [c.chunk_id for c in pending], "doc_id": [c.doc_id for c in pending],
                    "source": [c.source for c in pending], "title": [c.title for c in pending],
                    "chunk_index": [c.index for c in pending], "start_char": [c.start for c in pending],
                    "end_char": [c.end for c in pending], "text": [c.text for c in pending],
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), embedder.dims)}  # fmt: skip
            stats["chunks"] += len(pending)
            stats["chars"] += sum(len(c.text) for c in pending)
            pending.clear()
            return pa.RecordBatch.from_pydict(cols, schema=schema)

        for doc in self._documents(ctx, sources):
            stats["documents"] += 1
            pending.extend(chunk_document(doc, embedder.tokenizer, cfg.tokens, cfg.overlap))
            while len(pending) >= BATCH_CHUNKS:
                rest = pending[BATCH_CHUNKS:]
                del pending[BATCH_CHUNKS:]
                yield flush()
                pending.extend(rest)
                if time.monotonic() - last_log > 10:
                    last_log = time.monotonic()
                    log.info("kb_index: %d documents, %d chunks embedded (%.0f chunks/s)", stats["documents"],
                             stats["chunks"], stats["chunks"] / (last_log - start))  # fmt: skip
        if pending:
            yield flush()

    def _evaluate(self, ctx: StageContext, ref: dict[str, Any], embedder: Any) -> dict[str, float]:
        from domainllm.knowledge.evaluate import load_queries, score
        from domainllm.knowledge.store import reader

        cfg = ctx.spec.knowledge.eval
        assert cfg is not None
        try:
            queries = load_queries(cfg.path)
        except (OSError, ValueError) as exc:
            raise StageError(f"knowledge.eval.path: {exc}") from None
        metrics, rows = score(reader(ref), embedder, queries, cfg.k)
        lines = ["| metric | value |", "|---|---|", *(f"| {k} | {v:.3f} |" for k, v in metrics.items()), "",
                 f"{len(queries)} queries; misses at k={max(cfg.k)}:", ""]  # fmt: skip
        lines += [f"- {r['query']!r}: wanted {r['relevant']}, got {r['retrieved'][:3]}" for r in rows if not r[f"recall_at_{max(cfg.k)}"]][:20]
        text = "\n".join(lines) + "\n"
        log.info("kb_index: retrieval on %s\n%s", cfg.path, text)
        with ctx.out.fs.open(ctx.out.file("retrieval.md"), "w") as fh:
            fh.write(text)
        with ctx.out.fs.open(ctx.out.file("retrieval.jsonl"), "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        with ctx.out.fs.open(ctx.out.file("retrieval.png"), "wb") as fh:
            fh.write(_recall_plot(metrics, cfg.k))
        return metrics

    def _report(self, ctx: StageContext, ref: dict[str, Any], stats: dict[str, int], metrics: dict[str, float],
                embedder: Any, sources: set[str]) -> None:  # fmt: skip
        cfg = ctx.spec.knowledge
        where = {k: v for k, v in ref.items() if k != "password_env"}
        text = (f"# Knowledge base of run {ctx.run_id}\n\n| | |\n|---|---|\n| sources | {', '.join(sorted(sources))} |\n"
                f"| documents | {stats['documents']} |\n| chunks | {stats['chunks']} |\n"
                f"| mean chunk | {stats['chars'] / max(stats['chunks'], 1):.0f} characters |\n"
                f"| chunking | {cfg.chunking.tokens} tokens, {cfg.chunking.overlap} overlap |\n"
                f"| embedding | {cfg.embedding.model} ({embedder.dims} dims) |\n| store | {json.dumps(where)} |\n"
                f"| speed | {metrics['chunks_per_s']:.0f} chunks/s |\n")  # fmt: skip
        log.info("kb_index:\n%s", text)
        with ctx.out.fs.open(ctx.out.file("index.md"), "w") as fh:
            fh.write(text)


def _recall_plot(metrics: dict[str, float], ks: tuple[int, ...]) -> bytes:
    from domainllm.plots import subplots, to_png

    fig, axes = subplots(1, 1, figsize=(4, 3), squeeze=False)
    ax = axes[0][0]
    ax.plot(list(ks), [metrics[f"retrieval.recall_at_{k}"] for k in ks], marker="o", label="recall@k")
    ax.axhline(metrics["retrieval.mrr"], color="tab:gray", linestyle="--", label="MRR")
    ax.set_xlabel("k")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("retrieval on the labelled queries", fontsize=9)
    return to_png(fig)
