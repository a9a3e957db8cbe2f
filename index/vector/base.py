"""The small interface every vector backend implements (exact Flat, IVF at scale), and the FAISS import."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


def load_faiss() -> Any:
    """Return the faiss module, or raise an ImportError that says what to install."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a hard dependency
        raise ImportError("FAISS is missing: pip install faiss-cpu (or faiss-gpu on CUDA machines)") from exc
    return faiss


def as_ids(ids: np.ndarray) -> np.ndarray:
    """Return ids as the contiguous int64 array FAISS wants."""
    return np.ascontiguousarray(ids, dtype=np.int64)


def as_vectors(vectors: np.ndarray) -> np.ndarray:
    """Return vectors as the contiguous float32 matrix FAISS wants."""
    return np.ascontiguousarray(vectors, dtype=np.float32)


class VectorBackend(Protocol):
    """An id-keyed inner-product index over L2-normalised float32 vectors."""

    name: str
    dim: int
    trained_on: int  # library size the backend's structure was chosen for (0 for exact search)

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

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids, vectors) of everything held, in no particular order."""
        ...

    def write(self, handle: Any) -> None:
        """Write the index for a snapshot through ``handle.write``."""
        ...
