"""GPU FAISS, used only when the installed faiss has GPU support and a GPU is present (never required)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from index.vector.base import load_faiss

log = logging.getLogger(__name__)

# FAISS GPU k-selection handles at most this many results (and probes) per query; larger searches stay on CPU.
GPU_MAX_K = 2048

_resources: Any = None
_lock = threading.Lock()


def gpu_count() -> int:
    """Return how many GPUs FAISS can use (0 with faiss-cpu, or when no GPU is visible)."""
    faiss = load_faiss()
    if not hasattr(faiss, "StandardGpuResources") or not hasattr(faiss, "get_num_gpus"):
        return 0
    try:
        return int(faiss.get_num_gpus())
    except RuntimeError:  # a GPU build on a machine whose driver cannot be loaded
        return 0


def gpu_resources() -> Any:
    """Return the process-wide GPU resources (temporary memory, streams), created on first use."""
    global _resources
    with _lock:
        if _resources is None:
            _resources = load_faiss().StandardGpuResources()
        return _resources


def assignment_index(dim: int, use_gpu: bool) -> Any:
    """Return an exact inner-product index for k-means assignment: on the GPU when allowed and present."""
    faiss = load_faiss()
    if use_gpu and gpu_count():
        return faiss.GpuIndexFlatIP(gpu_resources(), dim)
    return faiss.IndexFlatIP(dim)


class GpuMirror:
    """A GPU copy of a CPU index for searching: additions follow it, a removal makes it copy again lazily.

    The CPU index stays the one that is mutated and serialised: FAISS GPU indexes cannot remove ids.
    """

    def __init__(self) -> None:
        self._gpu: Any = None

    def added(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Mirror an addition already applied to the CPU index."""
        if self._gpu is None:
            return
        try:
            self._gpu.add_with_ids(vectors, ids)
        except RuntimeError:
            log.debug("GPU mirror refused an addition; it will be copied again", exc_info=True)
            self._gpu = None

    def removed(self) -> None:
        """Drop the copy after a removal; the next search copies the CPU index again."""
        self._gpu = None

    def searcher(self, cpu_index: Any, k: int) -> Any:
        """Return the index to search: the GPU copy (made now if needed), or the CPU one for very large k."""
        if k > GPU_MAX_K:
            return cpu_index
        if self._gpu is None:
            self._gpu = load_faiss().index_cpu_to_gpu(gpu_resources(), 0, cpu_index)
        return self._gpu


def mirror_if_available(use_gpu: bool) -> GpuMirror | None:
    """Return a GPU mirror when GPU FAISS is allowed and usable here, else None."""
    return GpuMirror() if use_gpu and gpu_count() else None
