"""Exact inner-product search with FAISS (IndexIDMap2 over IndexFlatIP)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a hard dependency
        raise ImportError("FAISS is missing: pip install faiss-cpu (or faiss-gpu on CUDA machines)") from exc
    return faiss


class FlatBackend:
    """Exact cosine search; the right choice until the library is large."""

    name = "flat"

    def __init__(self, dim: int, index: Any | None = None) -> None:
        faiss = _faiss()
        self.dim = dim
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @classmethod
    def deserialize(cls, data: bytes) -> FlatBackend:
        """Rebuild a backend from ``serialize`` output."""
        faiss = _faiss()
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(index.d, index)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under their segment ids."""
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def remove(self, ids: np.ndarray) -> int:
        """Remove the given ids; return how many were present."""
        if not len(ids):
            return 0
        return int(self._index.remove_ids(ids.astype(np.int64)))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the top-k (scores, ids) per query."""
        k = max(1, min(k, len(self))) if len(self) else 1
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, ids

    def serialize(self) -> bytes:
        """Return the FAISS index as bytes."""
        return bytes(_faiss().serialize_index(self._index))
