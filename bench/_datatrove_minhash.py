"""One step of datatrove's MinHash dedup, run by bench/dedup_vs_datatrove.py in datatrove's own venv.

    bench/.venv-datatrove/bin/python bench/_datatrove_minhash.py --step signature --input DIR --work DIR

Steps, in order (each its own process, so each gets its own peak RSS):

- `signature`: JsonlReader(INPUT, id_key="id") -> MinhashDedupSignature, tasks=1.
- `buckets`:   MinhashDedupBuckets, tasks=num_buckets (datatrove requires world_size to be a
  multiple of num_buckets), workers=1, so the buckets run one after another in this process.
- `cluster`:   MinhashDedupCluster, tasks=1 (datatrove requires exactly one).
- `filter`:    JsonlReader -> MinhashDedupFilter -> JsonlWriter(WORK/kept), tasks=1.

LocalPipelineExecutor with workers=1 runs its tasks in-process (it still starts a
`multiprocess` manager process for the rank queue). Prints one JSON line: the seconds the
executor's `run()` took plus the step's stats. Needs `datatrove[processing]` plus spacy
(datatrove's English word tokenizer is spaCy's blank "en" pipeline) and orjson.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", required=True, choices=["signature", "buckets", "cluster", "filter"])
    ap.add_argument("--input", required=True, help="folder of JSONL files with `id` and `text`")
    ap.add_argument("--work", required=True)
    ap.add_argument("--num-buckets", type=int, default=14)
    ap.add_argument("--hashes-per-bucket", type=int, default=8)
    ap.add_argument("--ngram", type=int, default=5)
    args = ap.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    cfg = MinhashConfig(
        n_grams=args.ngram, num_buckets=args.num_buckets, hashes_per_bucket=args.hashes_per_bucket
    )
    work = args.work.rstrip("/")

    def reader() -> JsonlReader:
        return JsonlReader(args.input, id_key="id", text_key="text")

    if args.step == "signature":
        pipeline, tasks = [reader(), MinhashDedupSignature(output_folder=f"{work}/signatures", config=cfg)], 1
    elif args.step == "buckets":
        pipeline = [
            MinhashDedupBuckets(
                input_folder=f"{work}/signatures", output_folder=f"{work}/buckets", config=cfg
            )
        ]
        tasks = cfg.num_buckets
    elif args.step == "cluster":
        pipeline = [
            MinhashDedupCluster(
                input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=cfg
            )
        ]
        tasks = 1
    else:
        pipeline = [
            reader(),
            MinhashDedupFilter(input_folder=f"{work}/remove_ids"),
            JsonlWriter(f"{work}/kept", compression=None),
        ]
        tasks = 1
    executor = LocalPipelineExecutor(
        pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{work}/logs/{args.step}"
    )
    t0 = time.perf_counter()
    stats = executor.run()
    seconds = time.perf_counter() - t0
    step_stats = {s.name: {k: v.total for k, v in s.stats.items()} for s in stats.stats} if stats else {}
    print(json.dumps({"seconds": seconds, "stats": step_stats, "config": str(cfg)}, default=str))


if __name__ == "__main__":
    main()
