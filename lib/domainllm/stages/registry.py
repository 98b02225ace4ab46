"""Stage name -> implementation. Imports are lazy so listing stages stays cheap."""

from __future__ import annotations

import importlib

from domainllm.stages.base import Stage
from domainllm.stages.names import STAGE_NAMES

_IMPLEMENTATIONS = {
    "ingest": "domainllm.stages.ingest:IngestStage",
    "quality": "domainllm.stages.quality:QualityStage",
    "dedup_signatures": "domainllm.stages.dedup:DedupSignaturesStage",
    "dedup_buckets": "domainllm.stages.dedup:DedupBucketsStage",
    "dedup_clusters": "domainllm.stages.dedup:DedupClustersStage",
    "dedup": "domainllm.stages.dedup:DedupStage",
    "pii": "domainllm.stages.pii:PiiStage",
    "compliance": "domainllm.stages.compliance:ComplianceStage",
    "decontaminate": "domainllm.stages.decontaminate:DecontaminateStage",
    "mix": "domainllm.stages.mix:MixStage",
    "kb_index": "domainllm.stages.kb_index:KbIndexStage",
    "base_model": "domainllm.stages.base_model:BaseModelStage",
    "pack": "domainllm.stages.pack:PackStage",
    "cpt": "domainllm.stages.cpt:CptStage",
    "sft_data": "domainllm.stages.sft_data:SftDataStage",
    "sft": "domainllm.stages.sft:SftStage",
    "dpo_data": "domainllm.stages.dpo_data:DpoDataStage",
    "dpo": "domainllm.stages.dpo:DpoStage",
    "eval_perplexity": "domainllm.stages.evaluate:EvalPerplexityStage",
    "eval_code": "domainllm.stages.evaluate:EvalCodeStage",
    "eval_choice": "domainllm.stages.evaluate:EvalChoiceStage",
    "eval_judge": "domainllm.stages.evaluate:EvalJudgeStage",
    "eval_qa": "domainllm.stages.evaluate:EvalQaStage",
    "decoding_search": "domainllm.stages.decoding_search:DecodingSearchStage",
    "gate": "domainllm.stages.gate:GateStage",
    "intents": "domainllm.stages.intents:IntentsStage",
    "quantize": "domainllm.stages.quantize:QuantizeStage",
    "eval_quantized": "domainllm.stages.eval_quantized:EvalQuantizedStage",
    "rollout": "domainllm.stages.rollout:RolloutStage",
    "data_report": "domainllm.stages.data_report:DataReportStage",
    "harvest": "domainllm.stages.harvest:HarvestStage",
    "curate": "domainllm.stages.curate:CurateStage",
    "sample": "domainllm.stages.sample:SampleStage",
    "label": "domainllm.stages.label:LabelStage",
    "preferences": "domainllm.stages.preferences:PreferencesStage",
    "flywheel_report": "domainllm.stages.flywheel_report:FlywheelReportStage",
}
assert set(_IMPLEMENTATIONS) == set(STAGE_NAMES)


def get_stage(name: str) -> Stage:
    if name not in _IMPLEMENTATIONS:
        raise KeyError(f"unknown stage {name!r}; known stages: {', '.join(STAGE_NAMES)}")
    module, cls = _IMPLEMENTATIONS[name].split(":")
    return getattr(importlib.import_module(module), cls)()
