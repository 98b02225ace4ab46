"""Near-dedup on the real-text labelled set: our CLI, datatrove's MinHash and SimHash side by side.

    .venv/bin/python -m bench.realtext.dedup_set --out bench/.data/realtext-dedup --docs 20000 --seed 0
    .venv/bin/python bench/realtext_dedup.py --set bench/.data/realtext-dedup --part tune [--threshold 0.8]

Tools (each on PART.jsonl's `id` and `text` only, in one process pinned to one CPU, thread
pools set to 1, as bench/dedup_vs_datatrove.py does):

- ours: `.venv/bin/domainllm data dedup IN.jsonl OUT --threshold T --force`, end to end (ingest
  included); removed ids and their `duplicate_of` from OUT/removed/;
- datatrove: MinhashDedupSignature -> Buckets -> Cluster -> Filter, MinhashConfig() defaults,
  LocalPipelineExecutor workers=1 (bench/_datatrove_minhash.py, driven as
  bench/dedup_vs_datatrove.py drives it); removed = all ids minus those in its kept JSONL;
- simhash-3 / simhash-6: 64-bit SimHash over xxh64-hashed word 3-grams (lower-cased,
  non-alphanumerics as separators), pairs at Hamming distance <= 3 / <= 6 (found through k+1
  exact-match blocks), connected components, the first document of each kept. In this process.

Scores (labels from PARTS.labels.json): recall of planted copies, per cluster of an original and
its copies (a cluster of k copies is fully found when k of its k+1 members are removed); a
copy is missed when it and its original both stay (when the original went, the best-kept
copy is the cluster's survivor); distinct removed: base documents without copies and templated
pages removed, over their number. Misses broken down by kind, perturbation and Jaccard bucket.
Writes SET/results-PART-TOOL.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dedup_vs_datatrove import DATATROVE_PY, measured, run_datatrove  # noqa: E402

TOOLS = ("ours", "datatrove", "simhash")


# ---------------------------------------------------------------- tools


def run_ours(inp: Path, work: Path, threshold: float, cpu: int) -> dict:
    import pyarrow.parquet as pq

    work.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("domainllm")
    cmd = [str(exe), "data", "dedup", str(inp), str(work / "out"), "--threshold", str(threshold), "--force"]
    wall, rss, out = measured(cmd, work / "cli.log", cpu)
    removed: dict[str, str | None] = {}
    reasons = Counter()
    for p in sorted((work / "out" / "removed").glob("*.parquet")):
        t = pq.read_table(p, columns=["id", "reason", "duplicate_of"]).to_pydict()
        for i, reason, dup in zip(t["id"], t["reason"], t["duplicate_of"], strict=True):
            removed[i] = dup
            reasons[reason] += 1
    counts = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return {"seconds": wall, "step_seconds": {"cli": wall}, "rss_mb": rss, "removed": removed,
            "reasons": dict(reasons), "cli_counts": counts}  # fmt: skip


def run_dt(inp: Path, work: Path, ids: list[str], cpu: int) -> dict:
    if not DATATROVE_PY.exists():
        sys.exit(f"{DATATROVE_PY} not found; see bench/dedup_vs_datatrove.py's docstring for the setup")
    # run_datatrove reads ROOT/jsonl/ and writes WORK/datatrove/
    r = run_datatrove(inp.parent.parent, work, ids, cpu)
    steps = r["steps"]
    return {"seconds": sum(s["wall"] for s in steps.values()),
            "step_seconds": {k: round(v["seconds"], 2) for k, v in steps.items()},
            "rss_mb": max(v["rss_mb"] for v in steps.values()), "removed": dict.fromkeys(r["removed"]),
            "version": r["version"], "stats": {k: v["stats"] for k, v in steps.items()}}  # fmt: skip


_TOKEN = re.compile(r"[^\W_]+")


def simhashes(texts: list[str]) -> object:
    """64-bit SimHash of each text over its xxh64-hashed word 3-grams (a set: weight 1 each)."""
    import numpy as np
    import xxhash

    out = np.zeros(len(texts), dtype=np.uint64)
    bit_weights = (np.uint64(1) << np.arange(64, dtype=np.uint64))
    for lo in range(0, len(texts), 1000):
        feats, owner = [], []
        for d, t in enumerate(texts[lo : lo + 1000]):
            w = _TOKEN.findall(t.lower())
            grams = {" ".join(w[i : i + 3]) for i in range(max(len(w) - 2, 1))} if w else {""}
            feats.extend(xxhash.xxh64_intdigest(g.encode()) for g in grams)
            owner.extend([d] * len(grams))
        h = np.array(feats, dtype=np.uint64)
        bits = ((h[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(np.int32) * 2 - 1
        sums = np.zeros((min(1000, len(texts) - lo), 64), dtype=np.int64)
        np.add.at(sums, np.array(owner), bits)
        out[lo : lo + len(sums)] = ((sums > 0).astype(np.uint64) * bit_weights).sum(axis=1, dtype=np.uint64)
    return out


def simhash_pairs(fp: object, k: int) -> set[tuple[int, int]]:
    """Pairs (i < j) at Hamming distance <= k: by pigeonhole they agree on one of k+1 blocks."""
    import numpy as np

    widths = [64 // (k + 1) + (1 if b < 64 % (k + 1) else 0) for b in range(k + 1)]
    pairs: set[tuple[int, int]] = set()
    shift = 0
    for w in widths:
        key = (fp >> np.uint64(shift)) & np.uint64((1 << w) - 1)
        shift += w
        order = np.argsort(key, kind="stable")
        ks = key[order]
        bounds = np.flatnonzero(np.diff(ks)) + 1
        for grp in np.split(order, bounds):
            if len(grp) < 2:
                continue
            a, b = np.triu_indices(len(grp), 1)
            i, j = np.minimum(grp[a], grp[b]), np.maximum(grp[a], grp[b])
            near = np.bitwise_count(fp[i] ^ fp[j]) <= k
            pairs.update(zip(i[near].tolist(), j[near].tolist(), strict=True))
    return pairs


def run_simhash(ids: list[str], texts: list[str], ks: tuple[int, ...]) -> dict[str, dict]:
    t0 = time.perf_counter()
    fp = simhashes(texts)
    t_fp = time.perf_counter() - t0
    out = {}
    for k in ks:
        t1 = time.perf_counter()
        parent = list(range(len(ids)))

        def find(x: int, parent: list[int] = parent) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for i, j in simhash_pairs(fp, k):
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)  # the root is the cluster's first document
        removed = {ids[i]: ids[find(i)] for i in range(len(ids)) if find(i) != i}
        secs = t_fp + time.perf_counter() - t1
        out[f"simhash-{k}"] = {"seconds": secs, "step_seconds": {"fingerprints": round(t_fp, 2),
                               "pairs+clusters": round(secs - t_fp, 2)}, "rss_mb": None, "removed": removed}  # fmt: skip
    return out


# ---------------------------------------------------------------- scoring


def bucket(x: float) -> str:
    edges = [0.3, 0.5, 0.6, 0.7, 0.8, 0.9]
    lo = max([e for e in edges if x >= e], default=0.0)
    hi = min([e for e in edges if x < e], default=1.0)
    return f"[{lo:.1f},{hi:.1f}{']' if hi == 1.0 else ')'}"


def score(labels: dict, removed: dict[str, str | None]) -> dict:
    copies = labels["copies"]
    clusters: dict[str, list[str]] = defaultdict(list)
    for cid, c in copies.items():
        clusters[c["original"]].append(cid)
    found, missed = 0, []
    wrong_target = 0
    for orig, cids in clusters.items():
        members = [orig, *cids]
        found += min(len(cids), sum(m in removed for m in members))
        kept = [c for c in cids if c not in removed]
        if orig in removed and kept:  # one copy survives in the original's place
            kept.remove(max(kept, key=lambda c: copies[c]["char5_jaccard"]))
        missed += kept
        for m in members:
            target = removed.get(m)
            if target is not None and target not in members:
                wrong_target += 1
    base = set(labels["base_ids"])
    lone = base - set(clusters)
    templated = {i for t in labels["hard_negatives"]["templated"] for i in t["ids"]}
    pairs = labels["hard_negatives"]["similar_pairs"]
    distinct = lone | templated
    n = len(copies)
    by_kind, by_pert, by_w3, by_c5 = (defaultdict(lambda: [0, 0]) for _ in range(4))
    miss_set = set(missed)
    for cid, c in copies.items():
        hit = cid in miss_set
        for table, key in ((by_kind, c["kind"]), (by_w3, bucket(c["word3_jaccard"])), (by_c5, bucket(c["char5_jaccard"]))):
            table[key][0] += 1
            table[key][1] += hit
        for p in c["perturbations"]:
            by_pert[p][0] += 1
            by_pert[p][1] += hit
    lowest = sorted(missed, key=lambda c: copies[c]["word3_jaccard"])[:10]
    return {
        "recall": found / max(n, 1),
        "copies": n,
        "missed": len(missed),
        "distinct_removed_fraction": len(distinct & set(removed)) / max(len(distinct), 1),
        "lone_base_removed": len(lone & set(removed)),
        "lone_base_removed_by_kind": dict(Counter(labels["kinds"][i] for i in lone & set(removed)).most_common()),
        "lone_base": len(lone),
        "templated_removed": len(templated & set(removed)),
        "templated": len(templated),
        "similar_pairs_with_lone_member_removed": sum(
            (p["a"] in removed and p["a"] in lone) or (p["b"] in removed and p["b"] in lone) for p in pairs
        ),
        "similar_pairs": len(pairs),
        "removed": len(removed),
        "removed_with_target_outside_cluster": wrong_target,
        "misses_by_kind": {k: {"copies": v[0], "missed": v[1]} for k, v in sorted(by_kind.items())},
        "misses_by_perturbation": {k: {"copies": v[0], "missed": v[1]} for k, v in
                                   sorted(by_pert.items(), key=lambda kv: -kv[1][1] / kv[1][0])},  # fmt: skip
        "misses_by_word3_jaccard": {k: {"copies": v[0], "missed": v[1]} for k, v in sorted(by_w3.items())},
        "misses_by_char5_jaccard": {k: {"copies": v[0], "missed": v[1]} for k, v in sorted(by_c5.items())},
        "lowest_jaccard_misses": [{"kind": copies[c]["kind"], "perturbations": copies[c]["perturbations"],
                                   "word3": copies[c]["word3_jaccard"], "char5": copies[c]["char5_jaccard"]}
                                  for c in lowest],  # fmt: skip
        "missed_ids": sorted(missed),
    }


def our_measure(labels: dict, texts: dict[str, str], missed: list[str], removed: dict, threshold: float,
                ngram: int = 3) -> dict:  # fmt: skip
    """Of our misses, how many are at or above `threshold` by our own shingles (after our ingest's
    normalization): LSH misses, rather than copies below our threshold."""
    from domainllm.data.dedup.minhash import shingles
    from domainllm.data.normalize import Normalizer

    norm = Normalizer()
    above, orig_removed_above = [], 0
    for cid in missed:
        a = set(shingles(norm(texts[cid]).text, ngram))
        b = set(shingles(norm(texts[labels["copies"][cid]["original"]]).text, ngram))
        above.append(len(a & b) / max(len(a | b), 1))
        orig_removed_above += above[-1] >= threshold and labels["copies"][cid]["original"] in removed
    return {"missed": len(missed), "at_or_above_threshold": sum(x >= threshold for x in above),
            "at_or_above_with_original_removed_for_another_copy": orig_removed_above,
            "by_our_jaccard": dict(sorted(Counter(bucket(x) for x in above).items()))}  # fmt: skip


def fmt_breakdown(title: str, table: dict) -> str:
    return f"{title}: " + ", ".join(
        f"{k} {v['missed']}/{v['copies']} ({v['missed'] / max(v['copies'], 1):.0%})" for k, v in table.items()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="bench/.data/realtext-dedup")
    ap.add_argument("--part", required=True, choices=["tune", "heldout"])
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--tools", default="ours,datatrove,simhash", help=f"comma-separated of {', '.join(TOOLS)}")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    setdir = Path(args.set).resolve()
    labels = json.loads((setdir / f"{args.part}.labels.json").read_text())
    ids, texts = [], {}
    work = setdir / f"work-{args.part}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "jsonl").mkdir(parents=True)
    inp = work / "jsonl" / "docs.jsonl"
    with open(setdir / f"{args.part}.jsonl", encoding="utf-8") as fh, open(inp, "w", encoding="utf-8") as out:
        for line in fh:
            row = json.loads(line)
            ids.append(row["id"])
            texts[row["id"]] = row["text"]
            out.write(json.dumps({"id": row["id"], "text": row["text"]}, ensure_ascii=False) + "\n")
    cpu = min(os.sched_getaffinity(0))
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    for tool in tools:
        print(f"{tool} on {len(ids)} documents ...", file=sys.stderr)
        if tool == "ours":
            results["ours (CLI)"] = run_ours(inp, work / "ours", args.threshold, cpu)
        elif tool == "datatrove":
            (work / "dt").mkdir()
            results["datatrove MinHash"] = run_dt(inp, work / "dt", ids, cpu)
        elif tool == "simhash":
            results.update(run_simhash(ids, [texts[i] for i in ids], (3, 6)))
        else:
            sys.exit(f"unknown tool {tool!r}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)

    n = len(ids)
    mb = sum(len(t.encode()) for t in texts.values()) / 1e6
    print(f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, one CPU per tool (cpu {cpu}); load "
          f"{'/'.join(f'{x:.1f}' for x in load_before)} before, {'/'.join(f'{x:.1f}' for x in os.getloadavg())} after")  # fmt: skip
    print(f"part {args.part}: {n:,} documents ({mb:.1f} MB), {labels['base_docs']:,} base, {len(labels['copies']):,} "
          f"planted copies, threshold {args.threshold} (ours)\n")  # fmt: skip
    print("| tool | docs | seconds | docs/s | recall | distinct removed | removed |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        s = score(labels, r["removed"])
        r["score"] = s
        print(f"| {name} | {n:,} | {r['seconds']:.1f} | {n / r['seconds']:,.0f} | {s['recall']:.4f} | "
              f"{s['distinct_removed_fraction']:.4%} ({s['lone_base_removed']}/{s['lone_base']} base, "
              f"{s['templated_removed']}/{s['templated']} templated) | {s['removed']:,} |")  # fmt: skip
    for name, r in results.items():
        s = r["score"]
        print(f"\n### {name}: {s['missed']} of {s['copies']} copies missed; steps {r['step_seconds']}")
        print(fmt_breakdown("by kind", s["misses_by_kind"]))
        print(fmt_breakdown("by perturbation (a copy has 1-3)", s["misses_by_perturbation"]))
        print(fmt_breakdown("by word-3-gram Jaccard", s["misses_by_word3_jaccard"]))
        print(fmt_breakdown("by char-5-gram Jaccard", s["misses_by_char5_jaccard"]))
        print(f"copy-less base documents removed, by kind: {s['lone_base_removed_by_kind']}")
        print(f"similar pairs with a copy-less member removed: {s['similar_pairs_with_lone_member_removed']}/"
              f"{s['similar_pairs']}; removed with duplicate_of outside its cluster: "
              f"{s['removed_with_target_outside_cluster']}")  # fmt: skip
        print("10 lowest-Jaccard misses: " + "; ".join(
            f"{m['kind']} {'+'.join(m['perturbations'])} (w3 {m['word3']:.2f}, c5 {m['char5']:.2f})"
            for m in s["lowest_jaccard_misses"]))  # fmt: skip
        if name == "ours (CLI)":
            r["our_measure"] = our_measure(labels, texts, s["missed_ids"], r["removed"], args.threshold)
            print(f"misses by our own 3-gram shingles (after our normalization): {r['our_measure']}")
            print(f"CLI counts: {json.dumps(r['cli_counts'])}; removed reasons {r['reasons']}")
        tool_key = name.split(" ")[0].lower()
        doc = {"part": args.part, "tool": name, "threshold": args.threshold if tool_key == "ours" else None,
               "docs": n, "mb": round(mb, 2), "seconds": round(r["seconds"], 2), "docs_per_s": round(n / r["seconds"], 1),
               "step_seconds": r["step_seconds"], "peak_rss_mb": r.get("rss_mb"), "machine": platform.node(),
               "cpu_model": _cpu_model(), "git_head": _git_head(), **s,
               **{k: r[k] for k in ("version", "cli_counts", "reasons", "our_measure") if k in r}}  # fmt: skip
        (setdir / f"results-{args.part}-{tool_key}.json").write_text(json.dumps(doc, indent=1))


def _git_head() -> str:
    import subprocess

    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return r.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
