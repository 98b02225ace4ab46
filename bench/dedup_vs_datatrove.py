"""Near-dedup side by side: our pipeline vs datatrove's MinHash dedup, on one labelled data set.

    .venv/bin/python bench/dedup_vs_datatrove.py --docs 200000
    .venv/bin/python bench/dedup_vs_datatrove.py --only-ours --docs 1000000 --min-words 45 --max-words 60

Setup, once (datatrove lives in its own, git-ignored venv; spaCy is its English word
tokenizer and is not in its `processing` extra, orjson is its JSONL writer's):

    python3 -m venv bench/.venv-datatrove
    bench/.venv-datatrove/bin/pip install 'datatrove[processing]' spacy orjson

Data: the labelled benchmark of tests/lib/data/dedup/labelled.py, `--docs` documents of which
`--dup-fraction` are near-exact copies of the others; `--min-words 45 --max-words 280` gives
about 400-2000 characters. It is written once under bench/.data/ as Parquet shards of 50,000
documents (the ingest stage's default shard size, DOCS_SCHEMA) for ours and as one JSONL file
for datatrove and the CLI, and reused by later runs with the same parameters.

Each step of each tool runs in its own process pinned to one CPU (thread pools set to 1), so
its time and its peak RSS (wait4's ru_maxrss, the process and its children) are its own:

- ours: write_signatures -> find_duplicates (+ write duplicates.parquet) -> run_step(DuplicateFilter),
  DedupConfig(threshold=--threshold, num_perm=--num-perm), other settings default (verify on
  unless --no-verify);
- datatrove: MinhashDedupSignature -> MinhashDedupBuckets -> MinhashDedupCluster ->
  MinhashDedupFilter with MinhashConfig() defaults (5-grams, 14 buckets x 8 hashes, no
  verification), LocalPipelineExecutor workers=1 (bench/_datatrove_minhash.py);
- the CLI (`domainllm data dedup docs.jsonl OUT --threshold T`), end to end including ingest,
  unless --no-cli.

"step seconds" is the step's own call in its process; "wall" adds process start-up, imports
and numba/spaCy loading. Recall and distinct-removed come from `score()` on the ids each tool
removed (for datatrove: all ids minus the ids in its kept JSONL).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data"
DATATROVE_PY = ROOT / "bench" / ".venv-datatrove" / "bin" / "python"
SHARD_ROWS = 50_000
ONE_THREAD = {
    v: "1" for v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
}


# ---------------------------------------------------------------- data


def prepare(args: argparse.Namespace) -> Path:
    """The data set's folder (docs/ Parquet shards, jsonl/docs.jsonl, labels.json), built once."""
    n_dup = round(args.docs * args.dup_fraction)
    root = DATA / f"dedup-{args.docs}-{n_dup}-w{args.min_words}-{args.max_words}-s{args.seed}"
    if (root / "DONE").exists():
        return root
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from domainllm.data.schema import DOCS_SCHEMA
    from tests.lib.data.dedup.labelled import make_benchmark

    t0 = time.monotonic()
    bench = make_benchmark(
        args.docs - n_dup, n_dup, seed=args.seed, min_words=args.min_words, max_words=args.max_words
    )
    print(f"generated {len(bench.ids)} documents in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    (root / "docs").mkdir(parents=True)
    (root / "jsonl").mkdir()
    for n, lo in enumerate(range(0, len(bench.ids), SHARD_ROWS)):
        ids, texts = bench.ids[lo : lo + SHARD_ROWS], bench.texts[lo : lo + SHARD_ROWS]
        const = {"source": "s", "domain": "domain", "lang": "en", "kind": "text", "metadata": "{}"}
        cols = {"id": ids, "text": texts, **{k: [v] * len(ids) for k, v in const.items()}}
        pq.write_table(
            pa.table(cols, schema=DOCS_SCHEMA), root / "docs" / f"part-{n:05d}.parquet", compression="zstd"
        )
    with open(root / "jsonl" / "docs.jsonl", "w", encoding="utf-8") as fh:
        for i, t in zip(bench.ids, bench.texts, strict=True):
            fh.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
    chars = sum(map(len, bench.texts))
    labels = {"ids": bench.ids, "duplicate_of": bench.duplicate_of, "kinds": bench.kinds,
              "mean_chars": chars / len(bench.texts), "min_chars": min(map(len, bench.texts)),
              "max_chars": max(map(len, bench.texts)), "text_mb": chars / 1e6}  # fmt: skip
    (root / "labels.json").write_text(json.dumps(labels))
    (root / "DONE").write_text("")
    return root


def load_labels(root: Path) -> tuple[object, dict]:
    sys.path.insert(0, str(ROOT))
    from tests.lib.data.dedup.labelled import Labelled

    labels = json.loads((root / "labels.json").read_text())
    return Labelled(labels["ids"], [], labels["duplicate_of"], labels["kinds"]), labels


# ---------------------------------------------------------------- measuring


# Started from a big process, a child's ru_maxrss starts at that process's peak (Linux copies
# the old address space's high-water mark into the new program's at exec), so every measured
# command runs under this small launcher, which reports its own child's wait4 ru_maxrss.
_LAUNCHER = (
    "import json, os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, st, ru = os.wait4(p.pid, 0); "
    "open(sys.argv[1], 'w').write(json.dumps([os.waitstatus_to_exitcode(st), ru.ru_maxrss]))"
)


def measured(cmd: list[str], log: Path, cpu: int) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB of the process and its children, stdout) of `cmd`."""
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT)}
    usage = log.with_suffix(".rusage")
    with open(log, "w") as err, tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _LAUNCHER, str(usage), *cmd], stdout=out, stderr=err, env=env,
                       cwd=ROOT, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}), check=False)  # fmt: skip
        wall = time.perf_counter() - t0
        out.seek(0)
        stdout = out.read()
    rc, maxrss_kb = json.loads(usage.read_text()) if usage.exists() else (-1, 0)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({rc}); see {log}:\n{log.read_text()[-3000:]}")
    return wall, round(maxrss_kb / 1024), stdout


def ours_step(step: str, docs: str, work: str, threshold: float, num_perm: int, verify: bool = True,
              ngram: int = 5) -> None:  # fmt: skip
    """One step of our pipeline in this process; prints {"seconds", "counts"} as JSON."""
    import fsspec
    import pyarrow.parquet as pq

    from domainllm.data.dedup import DuplicateFilter, find_duplicates, write_signatures
    from domainllm.data.dedup.minhash import band_hashes, permutations, signatures
    from domainllm.data.dedup.signatures import bands_rows
    from domainllm.data.steps import run_step
    from domainllm.spec.dedup import DedupConfig

    cfg = DedupConfig(threshold=threshold, num_perm=num_perm, verify=verify, ngram=ngram)
    fs = fsspec.filesystem("file")
    if step == "signatures":
        a, b = permutations(cfg.num_perm, cfg.seed)
        band_hashes(signatures(["warm up the compiled code cache"], a, b)[0], *bands_rows(cfg))
        t0 = time.perf_counter()
        counts = write_signatures(cfg, fs, docs, fs, f"{work}/signatures")
    elif step == "clusters":
        t0 = time.perf_counter()
        result = find_duplicates(cfg, fs, f"{work}/signatures", fs, docs)
        pq.write_table(result.duplicates, f"{work}/duplicates.parquet")
        counts = {**result.counts, "bands": result.bands, "rows": result.rows}
    else:
        dups = pq.read_table(f"{work}/duplicates.parquet")
        t0 = time.perf_counter()
        counts = run_step(DuplicateFilter(dups), fs, docs, fs, f"{work}/kept")
    print(json.dumps({"seconds": time.perf_counter() - t0, "counts": dict(counts)}))


def run_ours(root: Path, work: Path, args: argparse.Namespace, cpu: int) -> dict:
    import pyarrow.parquet as pq

    steps = {}
    for step in ("signatures", "clusters", "filter"):
        cmd = [sys.executable, __file__, "--step", step, "--step-docs", str(root / "docs"), "--step-work", str(work),
               "--threshold", str(args.threshold), "--num-perm", str(args.num_perm),
               "--ngram", str(args.ngram), *(["--no-verify"] if args.no_verify else [])]  # fmt: skip
        wall, rss, out = measured(cmd, work / f"ours-{step}.log", cpu)
        steps[step] = {"wall": wall, "rss_mb": rss, **json.loads(out)}
        print(f"  ours {step}: {steps[step]['seconds']:.1f} s, {rss} MiB", file=sys.stderr)
    removed = set(pq.read_table(work / "duplicates.parquet", columns=["id"]).column("id").to_pylist())
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in (work / "kept").glob("part-*.parquet"))
    return {"steps": steps, "removed": removed, "kept": kept, "info": steps["clusters"]["counts"]}


def run_cli(root: Path, work: Path, args: argparse.Namespace, cpu: int) -> dict:
    import pyarrow.parquet as pq

    exe = Path(sys.executable).with_name("domainllm")
    cmd = [str(exe), "data", "dedup", str(root / "jsonl" / "docs.jsonl"), str(work / "cli"),
           "--threshold", str(args.threshold), "--num-perm", str(args.num_perm)]  # fmt: skip
    wall, rss, out = measured(cmd, work / "cli.log", cpu)
    removed = set()
    for p in (work / "cli" / "removed").glob("*.parquet"):
        removed.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
    kept = sum(pq.ParquetFile(p).metadata.num_rows for p in (work / "cli").glob("part-*.parquet"))
    print(f"  cli: {wall:.1f} s, {rss} MiB", file=sys.stderr)
    return {
        "steps": {"cli": {"wall": wall, "rss_mb": rss, "seconds": wall}},
        "removed": removed,
        "kept": kept,
        "stdout": out,
    }


def run_datatrove(root: Path, work: Path, ids: list[str], cpu: int) -> dict:
    version = subprocess.run([str(DATATROVE_PY), "-c", "import importlib.metadata as m; print(m.version('datatrove'))"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    steps = {}
    for step in ("signature", "buckets", "cluster", "filter"):
        cmd = [str(DATATROVE_PY), str(ROOT / "bench" / "_datatrove_minhash.py"), "--step", step,
               "--input", str(root / "jsonl"), "--work", str(work / "datatrove")]  # fmt: skip
        wall, rss, out = measured(cmd, work / f"datatrove-{step}.log", cpu)
        steps[step] = {"wall": wall, "rss_mb": rss, **json.loads(out)}
        print(f"  datatrove {step}: {steps[step]['seconds']:.1f} s, {rss} MiB", file=sys.stderr)
    kept = set()
    for p in (work / "datatrove" / "kept").glob("*.jsonl"):
        with open(p, encoding="utf-8") as fh:
            kept.update(json.loads(line)["id"] for line in fh)
    return {"steps": steps, "removed": set(ids) - kept, "kept": len(kept), "version": version}


# ---------------------------------------------------------------- report


def missed(bench: object, removed: set[str], root: Path, threshold: float) -> str:
    """The copies left in together with their source (a copy counts as found when it or its source
    was removed; approximate for clusters of several copies): how many, how many of those are
    at or above `threshold` in exact Jaccard similarity of our shingles (LSH misses) rather than
    below it (not duplicates at this threshold), and their perturbation kinds."""
    import pyarrow.parquet as pq

    from domainllm.data.dedup.minhash import shingles

    pairs = [(d, s) for d, s in bench.duplicate_of.items() if d not in removed and s not in removed]  # type: ignore[attr-defined]
    if not pairs:
        return "none"
    wanted = {i for pair in pairs for i in pair}
    texts: dict[str, str] = {}
    for path in sorted((root / "docs").glob("part-*.parquet")):
        table = pq.read_table(path, columns=["id", "text"])
        for i, t in zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True):
            if i in wanted:
                texts[i] = t
    above = 0
    for d, s in pairs:
        x, y = set(shingles(texts[d])), set(shingles(texts[s]))
        above += len(x & y) / max(len(x | y), 1) >= threshold
    kinds = Counter(bench.kinds[d] for d, _ in pairs).most_common(6)  # type: ignore[attr-defined]
    return (f"{len(pairs)}, of which {above} at Jaccard >= {threshold} and {len(pairs) - above} below; "
            f"kinds: " + ", ".join(f"{k} {v}" for k, v in kinds))  # fmt: skip


def lsh_table(args: argparse.Namespace, bands: int, rows: int) -> list[str]:
    sims = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    out = ["| P(candidate pair) at Jaccard s | " + " | ".join(f"{s:.2f}" for s in sims) + " |",
           "|---|" + "---|" * len(sims)]  # fmt: skip
    for name, b, r in [(f"ours: {bands} bands x {rows} rows (num_perm {args.num_perm})", bands, rows),
                       ("datatrove default: 14 buckets x 8 hashes", 14, 8)]:  # fmt: skip
        probs = [1 - (1 - s**r) ** b for s in sims]
        out.append(f"| {name}, S-curve midpoint (1/b)^(1/r) = {(1 / b) ** (1 / r):.3f} | "
                   + " | ".join(f"{p:.3f}" for p in probs) + " |")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--dup-fraction", type=float, default=0.25)
    ap.add_argument("--min-words", type=int, default=45)
    ap.add_argument("--max-words", type=int, default=280)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--only-ours", action="store_true", help="skip datatrove")
    ap.add_argument("--no-verify", action="store_true", help="ours without exact Jaccard verification (like datatrove)")
    ap.add_argument("--ngram", type=int, default=5, help="ours: words per shingle")
    ap.add_argument(
        "--prepare-only", action="store_true", help="build the data set under bench/.data/ and stop"
    )
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end `domainllm data dedup` run")
    ap.add_argument("--keep", action="store_true", help="keep the work folder under bench/.data/")
    ap.add_argument("--step", choices=["signatures", "clusters", "filter"], help=argparse.SUPPRESS)
    ap.add_argument("--step-docs", help=argparse.SUPPRESS)
    ap.add_argument("--step-work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        ours_step(args.step, args.step_docs, args.step_work, args.threshold, args.num_perm, not args.no_verify,
                  args.ngram)  # fmt: skip
        return
    if not args.only_ours and not args.prepare_only and not DATATROVE_PY.exists():
        sys.exit(f"{DATATROVE_PY} not found; see this script's docstring for the setup, or pass --only-ours")

    sys.path.insert(0, str(ROOT))
    from tests.lib.data.dedup.labelled import score

    root = prepare(args)
    if args.prepare_only:
        print(root)
        return
    bench, labels = load_labels(root)
    cpu = min(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="run-", dir=DATA))
    print(f"data: {root} ; work: {work}", file=sys.stderr)
    try:
        results = {"ours (Python API, 3 steps)": run_ours(root, work, args, cpu)}
        if not args.no_cli:
            results["ours (CLI, ingest + dedup)"] = run_cli(root, work, args, cpu)
        if not args.only_ours:
            results["datatrove MinHash"] = run_datatrove(root, work, labels["ids"], cpu)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    n = len(labels["ids"])
    print(f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, Python {platform.python_version()}, "
          f"one CPU per process (cpu {cpu}); load average (1/5/15 min) "
          f"{'/'.join(f'{x:.1f}' for x in load_before)} before, {'/'.join(f'{x:.1f}' for x in os.getloadavg())} after")  # fmt: skip
    print(f"{n:,} documents ({len(labels['duplicate_of']):,} near-duplicates), {labels['text_mb']:.0f} MB of text, "
          f"{labels['mean_chars']:.0f} characters on average ({labels['min_chars']}-{labels['max_chars']}); "
          f"threshold {args.threshold}\n")  # fmt: skip
    head = ["tool", "step seconds", "total (steps)", "wall (processes)", "docs/s", "peak RSS", "kept", "removed",
            "recall", "distinct removed"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for name, r in results.items():
        steps = r["steps"]
        total = sum(s["seconds"] for s in steps.values())
        wall = sum(s["wall"] for s in steps.values())
        s = score(bench, r["removed"])
        print("| " + " | ".join([
            name, " / ".join(f"{k} {v['seconds']:.1f}" for k, v in steps.items()), f"{total:.1f} s", f"{wall:.1f} s",
            f"{n / total:,.0f}", f"{max(v['rss_mb'] for v in steps.values()):,} MiB "
            f"({' / '.join(str(v['rss_mb']) for v in steps.values())})", f"{r['kept']:,}", f"{len(r['removed']):,}",
            f"{s['recall']:.4f}", f"{s['distinct_removed_fraction']:.4%}",
        ]) + " |")  # fmt: skip
    print()
    for name, r in results.items():
        print(f"copies missed, {name}: {missed(bench, r['removed'], root, args.threshold)}")
    if "ours (CLI, ingest + dedup)" in results:
        print(
            "CLI output: " + results["ours (CLI, ingest + dedup)"]["stdout"].strip().replace("\n", " ")[:1500]
        )
    info = results["ours (Python API, 3 steps)"]["info"]
    print("ours, clustering counts: " + json.dumps({k: info[k] for k in sorted(info)}))
    if "datatrove MinHash" in results:
        print(f"datatrove version {results['datatrove MinHash']['version']}")
        for step, v in results["datatrove MinHash"]["steps"].items():
            print(f"datatrove {step} stats: " + json.dumps(v["stats"], ensure_ascii=False))
    print()
    print("\n".join(lsh_table(args, info["bands"], info["rows"])))


if __name__ == "__main__":
    main()
