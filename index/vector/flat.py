"""Exact inner-product search with FAISS (IndexIDMap2 over IndexFlatIP)."""

from __future__ import annotations

from typing import Any

import numpy as np

from index.vector.base import as_ids, as_vectors, load_faiss
from index.vector.gpu import GpuMirror, mirror_if_available


class FlatBackend:
    """Exact cosine search; the right choice until the library is large."""

    name = "flat"
    trained_on = 0

    def __init__(self, dim: int, index: Any | None = None, use_gpu: bool = False) -> None:
        faiss = load_faiss()
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._gpu: GpuMirror | None = mirror_if_available(use_gpu)

    @classmethod
    def read(cls, handle: Any, use_gpu: bool = False) -> FlatBackend:
        """Rebuild a backend from ``write`` output read through ``handle.read``."""
        faiss = load_faiss()
        index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"snapshot holds a {type(index).__name__}, not an exact (flat) index")
        return cls(index.d, index, use_gpu)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under their segment ids."""
        if len(ids):
            ids, vectors = as_ids(ids), as_vectors(vectors)
            self._index.add_with_ids(vectors, ids)
            if self._gpu is not None:
                self._gpu.added(ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        """Remove the given ids; return how many were present."""
        if not len(ids) or not len(self):
            return 0
        removed = int(self._index.remove_ids(as_ids(ids)))
        if removed and self._gpu is not None:
            self._gpu.removed()
        return removed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the top-k (scores, ids) per query."""
        k = max(1, min(k, len(self))) if len(self) else 1
        index = self._gpu.searcher(self._index, k) if self._gpu is not None else self._index
        scores, ids = index.search(as_vectors(queries), k)
        return scores, ids

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids, vectors) of everything held."""
        faiss = load_faiss()
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = self._index.index.reconstruct_n(0, len(self)) if len(self) else np.zeros((0, self.dim), np.float32)
        return ids, np.asarray(vectors, dtype=np.float32)

    def write(self, handle: Any) -> None:
        """Write the FAISS index through ``handle.write`` (streamed: no second copy in memory)."""
        faiss = load_faiss()
        faiss.write_index(self._index, faiss.PyCallbackIOWriter(handle.write))
