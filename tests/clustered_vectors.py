"""Clustered unit vectors for index tests and benchmarks (random iid vectors make recall meaningless)."""

from __future__ import annotations

import numpy as np

_CHUNK = 100_000


def clustered_vectors(
    count: int, dim: int, clusters: int, seed: int = 0, spread: float = 0.6, centers_seed: int = 1234
) -> np.ndarray:
    """Return ``count`` L2-normalised vectors drawn around ``clusters`` random centres (same centres per centers_seed)."""
    centers = np.random.default_rng(centers_seed).standard_normal((clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, _CHUNK):
        size = min(_CHUNK, count - start)
        noise = rng.standard_normal((size, dim), dtype=np.float32) * np.float32(spread / np.sqrt(dim))
        chunk = centers[rng.integers(0, clusters, size)] + noise
        out[start : start + size] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Return the mean fraction of each query's true top-k ids that were found."""
    k = truth.shape[1]
    hits = sum(len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (len(truth) * k)
