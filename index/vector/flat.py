"""Exact inner-product search with FAISS (IndexIDMap2 over IndexFlatIP)."""

from __future__ import annotations

from typing import Any

import numpy as np

from index.vector.base import as_vectors, load_faiss
from index.vector.faiss_backend import FaissBackend


class FlatBackend(FaissBackend):
    """Exact cosine search; the right choice until the library is large."""

    name = "flat"
    trained_on = 0

    def __init__(self, dim: int, index: Any | None = None, use_gpu: bool = False) -> None:
        faiss = load_faiss()
        super().__init__(index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), dim, use_gpu)

    @classmethod
    def read(cls, handle: Any, use_gpu: bool = False) -> FlatBackend:
        """Rebuild a backend from ``write`` output read through ``handle.read``."""
        faiss = load_faiss()
        index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"snapshot holds a {type(index).__name__}, not an exact (flat) index")
        return cls(index.d, index, use_gpu)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the top-k (scores, ids) per query."""
        index, k = self._searcher(k)
        scores, ids = index.search(as_vectors(queries), k)
        return scores, ids

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids, vectors) of everything held."""
        faiss = load_faiss()
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = self._index.index.reconstruct_n(0, len(self)) if len(self) else np.zeros((0, self.dim), np.float32)
        return ids, np.asarray(vectors, dtype=np.float32)
