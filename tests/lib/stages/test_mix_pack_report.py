"""The last data stages in the pipeline: mix -> pack (with the base model's tokenizer) ->
data_report, run in process over the tiny corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from transformers import AutoTokenizer

from domainllm.artifacts import RunLayout
from domainllm.spec import load_spec
from domainllm.stages.names import DOMAIN_STAGES
from domainllm.stages.runner import run_stage


def test_mix_pack_and_report(tiny_spec: Path, home: Path) -> None:
    spec = load_spec(tiny_spec)
    manifests = {name: run_stage(spec, name, "m").manifest for name in DOMAIN_STAGES}
    layout = RunLayout(spec.artifact_root, "m")

    mix = manifests["mix"]
    assert mix.counts["docs_in"] == manifests["decontaminate"].counts["docs_out"]
    assert 0.5 < mix.metrics["domain_fraction"] < 0.95  # whole files are sampled: approximate on tiny corpora
    mixed = [r for f in sorted(Path(layout.stage_dir("mix")).glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert [r["curriculum_stage"] for r in mixed] == sorted(r["curriculum_stage"] for r in mixed)

    pack = manifests["pack"]
    seq_len = spec.data.pack.seq_len
    rows = pq.read_table(Path(layout.stage_dir("pack")) / "part-00000.parquet").to_pylist()
    assert len(rows[0]["input_ids"]) == len(rows[0]["position_ids"]) == seq_len == sum(rows[0]["doc_lens"])
    info = json.loads((Path(layout.stage_dir("pack")) / "pack.json").read_text())
    tok = AutoTokenizer.from_pretrained(manifests["base_model"].info["model_path"])
    assert info["eos_token_id"] == tok.eos_token_id
    assert pack.counts["tokens"] == pack.counts["sequences"] * seq_len + pack.counts["tail_tokens_dropped"]
    # the first sequence starts with the first mixed document's tokens
    first = tok(mixed[0]["text"], add_special_tokens=False)["input_ids"]
    assert rows[0]["input_ids"][: min(len(first), seq_len)] == first[:seq_len]

    report = Path(manifests["data_report"].info["report_html"]).read_text()
    for section in ("Quality filters", "Duplicates", "PII replaced", "Decontamination", "Mix:", "Packed tokens"):
        assert section in report
    summary = json.loads((Path(layout.stage_dir("data_report")) / "summary.json").read_text())
    assert [r["step"] for r in summary["funnel"]] == ["ingest", "quality", "dedup", "compliance", "decontaminate"]
    assert summary["tokens"] == {k.split(".", 1)[1]: v for k, v in pack.counts.items() if k.startswith("tokens.")}
