"""A sequence-classification model from a local folder, scoring texts in batches (the
quality scorer and the compliance classifier)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from domainllm.spec.lists import TextClassifier

log = logging.getLogger(__name__)


class TransformersScorer:
    """Scores texts in batches with the probability of one label (default: the last).
    `where` names the spec field in error messages."""

    def __init__(self, cfg: TextClassifier, where: str = "data.quality.scorer") -> None:
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(f"{where} needs the `train` extra: pip install 'domainllm[train]'") from exc
        self.cfg = cfg
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.path)
        self.model = AutoModelForSequenceClassification.from_pretrained(cfg.path).eval()
        labels = self.model.config.id2label
        if cfg.label is None:
            self.label_id = max(labels)
        else:
            matches = [i for i, name in labels.items() if name == cfg.label]
            if not matches:
                raise ValueError(f"{where}.label {cfg.label!r} is not one of the model's labels {sorted(labels.values())}")
            self.label_id = matches[0]
        log.info("%s: %s, label %r", where, cfg.path, labels[self.label_id])

    def scores(self, texts: Sequence[str]) -> list[float]:
        out: list[float] = []
        for i in range(0, len(texts), self.cfg.batch_size):
            batch = [t[: self.cfg.max_chars] for t in texts[i : i + self.cfg.batch_size]]
            enc = self.tokenizer(batch, truncation=True, padding=True, return_tensors="pt")
            with self._torch.no_grad():
                probs = self.model(**enc).logits.softmax(-1)[:, self.label_id]
            out.extend(float(p) for p in probs)
        return out
