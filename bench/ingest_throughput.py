"""Ingest throughput and memory: synthetic JSONL and code trees of a chosen size.

    .venv/bin/python bench/ingest_throughput.py --mb 200 --shard-mb 32

Prints MB/s, records/s and the peak RSS of the ingest process; run it with two corpus sizes
to see that memory follows the shard size, not the corpus size.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = ["the", "of", "and", "to", "perl", "module", "hash", "scalar", "regex", "café", "naïve", "数据", "sub", "bless", "package"]


def make_corpus(root: Path, mb: float, seed: int = 0) -> tuple[int, int]:
    rng = random.Random(seed)
    target = int(mb * 1e6)
    written = records = 0
    (root / "code").mkdir(parents=True)
    with open(root / "docs.jsonl", "w", encoding="utf-8") as fh:
        while written < target * 0.8:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 200)))
            line = json.dumps({"id": f"d{records}", "text": text}, ensure_ascii=False) + "\n"
            fh.write(line)
            written += len(line.encode())
            records += 1
    i = 0
    while written < target:
        body = "\n".join(f"my $x{j} = {j}; # {rng.choice(WORDS)}" for j in range(rng.randint(50, 400)))
        (root / "code" / f"m{i}.pm").write_text(body)
        written += len(body)
        records += 1
        i += 1
    return written, records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--shard-mb", type=float, default=32)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        nbytes, _ = make_corpus(tmp / "in", args.mb)
        spec = {
            "name": "bench", "artifact_root": str(tmp / "out"),
            "sources": [
                {"name": "docs", "path": str(tmp / "in" / "docs.jsonl"), "domain": "domain"},
                {"name": "code", "path": str(tmp / "in" / "code"), "format": "code", "domain": "general"},
            ],
            "data": {"ingest": {"shard_max_bytes": int(args.shard_mb * 2**20), "shard_max_records": 10**9}},
            "base_model": {"path": str(tmp)},
        }  # fmt: skip
        (tmp / "spec.yaml").write_text(json.dumps(spec))
        code = (
            "import sys, time, resource; from domainllm.spec import load_spec; "
            "from domainllm.data.ingest import ingest; from fsspec.implementations.local import LocalFileSystem; "
            "s = load_spec(sys.argv[1]); t = time.monotonic(); "
            "r = ingest(s.sources, s.data.ingest, LocalFileSystem(), sys.argv[2]); "
            "print(time.monotonic() - t, r.counts['records_out'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp / "spec.yaml"), str(tmp / "out")],
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        secs, recs, rss_kb = float(out[0]), int(out[1]), int(out[2])
        print(json.dumps({
            "corpus_mb": round(nbytes / 1e6, 1), "records": recs, "seconds": round(secs, 2),
            "mb_per_s": round(nbytes / 1e6 / secs, 1), "records_per_s": round(recs / secs),
            "shard_mb": args.shard_mb, "peak_rss_mb": round(rss_kb / 1024), "cpu_cores_used": 1,
        }))  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
