"""Chat Vector (Huang et al., 2024): give a continued-pretrained model back the chat skills of
a chat model built on the same base by adding their weight difference,
`cpt + scale * (chat - base)`. One of the brief's remedies for catastrophic forgetting.

Embeddings and the output head are left alone by default (the CPT model may have a different
vocabulary, and the paper skips them too); any parameter whose shapes differ is skipped and
counted."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_SKIP = ("embed_tokens", "lm_head")


@dataclass
class ChatVectorReport:
    added: int = 0
    skipped_by_name: list[str] = field(default_factory=list)
    skipped_shape: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def apply_chat_vector(cpt_dir: str, chat_dir: str, base_dir: str, out_dir: str, *, scale: float = 1.0,
                      skip: tuple[str, ...] = DEFAULT_SKIP) -> ChatVectorReport:  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cpt = AutoModelForCausalLM.from_pretrained(cpt_dir, dtype=torch.float32)
    chat = AutoModelForCausalLM.from_pretrained(chat_dir, dtype=torch.float32).state_dict()
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).state_dict()
    report = ChatVectorReport()
    with torch.no_grad():
        for name, param in cpt.named_parameters():
            if any(s in name for s in skip):
                report.skipped_by_name.append(name)
            elif name not in chat or name not in base:
                report.missing.append(name)
            elif not (chat[name].shape == base[name].shape == param.shape):
                report.skipped_shape.append(name)
            else:
                param.add_(scale * (chat[name] - base[name]))
                report.added += 1
    if report.missing or report.skipped_shape:
        log.warning("chat vector: %d parameters missing in chat/base, %d with other shapes: left as trained",
                    len(report.missing), len(report.skipped_shape))  # fmt: skip
    cpt.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(cpt_dir).save_pretrained(out_dir)
    log.info("chat vector: added to %d parameters (scale %s); skipped %d by name", report.added, scale,
             len(report.skipped_by_name))  # fmt: skip
    return report
