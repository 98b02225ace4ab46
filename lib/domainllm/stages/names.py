"""The stage catalogue as plain data, importable without any heavy dependency."""

# Stage name -> logical image it runs in (runtime.images). Order is pipeline order.
STAGE_IMAGES: dict[str, str] = {
    "ingest": "worker",
    "quality": "worker",
    "dedup_signatures": "worker",
    "dedup_buckets": "worker",
    "dedup_clusters": "worker",
    "dedup": "worker",
    "pii": "worker",
    "compliance": "worker",
    "decontaminate": "worker",
    "mix": "worker",
    "kb_index": "trainer",  # embeddings: torch
    "base_model": "trainer",
    "pack": "worker",
    "cpt": "trainer",
    "sft_data": "worker",
    "sft": "trainer",
    "dpo_data": "trainer",
    "dpo": "trainer",
    "eval_perplexity": "trainer",
    "eval_code": "trainer",
    "eval_choice": "trainer",
    "eval_judge": "trainer",
    "eval_qa": "trainer",
    "decoding_search": "trainer",
    "gate": "worker",
    "intents": "trainer",
    "quantize": "trainer",
    "eval_quantized": "trainer",
    "rollout": "serve",
    "data_report": "worker",
    # data_flywheel
    "harvest": "worker",
    "curate": "worker",
    "sample": "trainer",
    "label": "worker",
    "preferences": "worker",
    "flywheel_report": "worker",
}

STAGE_NAMES: tuple[str, ...] = tuple(STAGE_IMAGES)
FLYWHEEL_STAGES: tuple[str, ...] = ("harvest", "curate", "sample", "label", "preferences", "flywheel_report")
"""The data_flywheel DAG's stages; every other stage is the domain_llm DAG's."""
DOMAIN_STAGES: tuple[str, ...] = tuple(s for s in STAGE_NAMES if s not in FLYWHEEL_STAGES)
ROUND_STAGES: tuple[str, ...] = ("dpo_data", "dpo", "eval_perplexity", "eval_code", "eval_choice", "eval_judge", "eval_qa",
                                 "decoding_search", "gate", "quantize", "eval_quantized", "rollout")  # fmt: skip
"""What a training round the flywheel starts reruns, on the run that trained the serving version."""

# Stage name -> the stages whose output it reads: the DAG's edges (each stage's
# `requires`; tests/lib/stages/test_registry.py keeps the two in step).
STAGE_REQUIRES: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "quality": ("ingest",),
    "dedup_signatures": ("quality",),
    "dedup_buckets": ("dedup_signatures",),
    "dedup_clusters": ("quality", "dedup_signatures", "dedup_buckets"),
    "dedup": ("quality", "dedup_clusters"),
    "pii": ("dedup",),
    "compliance": ("pii",),
    "decontaminate": ("compliance",),
    "mix": ("decontaminate",),
    "kb_index": ("decontaminate",),
    "base_model": ("ingest",),
    "pack": ("mix", "base_model"),
    "cpt": ("pack", "base_model"),
    "sft_data": ("decontaminate",),
    "sft": ("sft_data", "cpt"),
    "dpo_data": ("sft_data", "cpt"),
    "dpo": ("dpo_data", "sft"),
    "eval_perplexity": ("dpo", "base_model", "mix"),
    "eval_code": ("dpo", "base_model", "mix", "kb_index"),
    "eval_choice": ("dpo", "base_model", "mix"),
    "eval_judge": ("dpo", "base_model", "mix", "kb_index"),
    "eval_qa": ("dpo", "base_model", "mix", "kb_index"),
    "decoding_search": ("dpo",),
    "gate": ("eval_perplexity", "eval_code", "eval_choice", "eval_judge", "eval_qa", "dpo"),
    "intents": (),
    "quantize": ("gate", "mix"),
    "eval_quantized": ("quantize", "mix"),
    "rollout": ("gate", "kb_index", "intents"),
    "data_report": ("ingest", "quality", "dedup_clusters", "dedup", "pii", "compliance", "decontaminate", "mix", "pack"),
    "harvest": (),
    "curate": ("harvest",),
    "sample": ("curate",),
    "label": ("sample",),
    "preferences": ("harvest", "sample", "label"),
    "flywheel_report": ("harvest", "curate", "sample", "label", "preferences"),
}

MULTI_NODE_STAGES: frozenset[str] = frozenset({"cpt", "sft", "dpo"})
"""Training stages that may run on several nodes (`runtime.stages.<stage>.nodes`)."""

SHARDED_STAGES: frozenset[str] = frozenset({"quality", "dedup_signatures", "dedup_buckets", "dedup", "pii", "compliance", "decontaminate"})
"""Stages that run as one task per shard (`data.shards`) plus a collect task."""
