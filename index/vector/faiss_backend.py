"""What the FAISS backends share: the id-keyed index, its optional GPU mirror, adding, removing and writing."""

from __future__ import annotations

from typing import Any

import numpy as np

from index.vector.base import as_ids, as_vectors, load_faiss
from index.vector.gpu import GpuMirror, mirror_if_available


class FaissBackend:
    """A FAISS index keyed by segment id, mirrored on the GPU when asked and available.

    Subclasses say how ids are removed (``_remove_ids``) and how a search runs; ``_searcher`` gives them the index
    to query (the GPU mirror or the CPU index) and the k it can answer.
    """

    def __init__(self, index: Any, dim: int, use_gpu: bool) -> None:
        self._index = index
        self.dim = dim
        self._gpu: GpuMirror | None = mirror_if_available(use_gpu)

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
        removed = self._remove_ids(as_ids(ids))
        if removed and self._gpu is not None:
            self._gpu.removed()
        return removed

    def _remove_ids(self, ids: np.ndarray) -> int:
        return int(self._index.remove_ids(ids))

    def _searcher(self, k: int) -> tuple[Any, int]:
        """Return the index to query and ``k`` bounded by what it holds (at least 1)."""
        k = max(1, min(k, len(self))) if len(self) else 1
        return (self._gpu.searcher(self._index, k) if self._gpu is not None else self._index), k

    def write(self, handle: Any) -> None:
        """Write the FAISS index through ``handle.write`` (streamed: no second copy in memory)."""
        faiss = load_faiss()
        faiss.write_index(self._index, faiss.PyCallbackIOWriter(handle.write))
