"""Graph helpers for clustering: star edges from equal keys, connected components, and
the exact Jaccard similarity of candidate pairs."""

from __future__ import annotations

import numba
import numpy as np


def star_edges(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """int64[m, 2] (member, first member) for every group of equal `values`."""
    if len(values) < 2:
        return np.empty((0, 2), dtype=np.int64)
    order = np.argsort(values, kind="stable")
    v = values[order]
    same = v[1:] == v[:-1]
    if not same.any():
        return np.empty((0, 2), dtype=np.int64)
    starts = np.r_[True, ~same]  # first position of each run
    head_pos = np.maximum.accumulate(np.where(starts, np.arange(len(v)), 0))
    member = np.nonzero(~starts)[0]
    return np.stack([keys[order[member]], keys[order[head_pos[member]]]], axis=1)


def connected_components(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, label per node) of the graph the edges span."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    nodes, inverse = np.unique(edges, return_inverse=True)
    inverse = inverse.reshape(edges.shape)
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (inverse[:, 0], inverse[:, 1])), shape=(len(nodes),) * 2)
    _, labels = scipy_components(graph, directed=False)
    return nodes, labels




@numba.njit(cache=True, nogil=True)
def jaccard_pairs(flat, offsets, a, b):  # pragma: no cover - compiled
    """Jaccard similarity of sets a[i] and b[i], each a sorted unique slice of `flat`."""
    out = np.zeros(a.shape[0], dtype=np.float64)
    for i in range(a.shape[0]):
        x, xe = offsets[a[i]], offsets[a[i] + 1]
        y, ye = offsets[b[i]], offsets[b[i] + 1]
        total = (xe - x) + (ye - y)
        inter = 0
        while x < xe and y < ye:
            if flat[x] == flat[y]:
                inter += 1
                x += 1
                y += 1
            elif flat[x] < flat[y]:
                x += 1
            else:
                y += 1
        union = total - inter
        out[i] = inter / union if union > 0 else 0.0
    return out
