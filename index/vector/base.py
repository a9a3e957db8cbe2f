"""The small interface every vector backend implements (exact Flat now, IVF at scale)."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VectorBackend(Protocol):
    """An id-keyed inner-product index over L2-normalised float32 vectors."""

    name: str
    dim: int

    def __len__(self) -> int:
        """Return the number of vectors held."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under int64 ids (ids must not already be present)."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids that are present; return how many were removed."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids) of shape (n_queries, k); missing slots have id -1."""
        ...

    def serialize(self) -> bytes:
        """Return the index as bytes for a snapshot."""
        ...
