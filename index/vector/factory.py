"""Which vector backend a library of a given size gets, and how each one is made or read back."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.settings import IndexSettings
from index.vector.base import VectorBackend
from index.vector.flat import FlatBackend
from index.vector.ivf import IVFBackend

EXACT = "flat"
IVF = "ivf"
# k-means wants a few dozen points per list; more costs training time (the bulk of a rebuild) for little gain.
TRAIN_POINTS_PER_LIST = 40
MIN_POINTS_PER_LIST = 39  # FAISS's own floor: fewer points per centroid give unstable lists
# Retrain once the library doubles: lists sized for half the vectors grow long and slow to scan.
REGROW_FACTOR = 2


def kind_for_size(count: int, settings: IndexSettings) -> str:
    """Return the backend a library of ``count`` vectors should use."""
    return IVF if count >= settings.ivf_threshold else EXACT


def nlist_for(count: int, settings: IndexSettings) -> int:
    """Return the number of IVF lists for ``count`` vectors (setting, else about 4 x sqrt(count))."""
    wanted = settings.nlist or 2 ** round(math.log2(4 * math.sqrt(max(count, 1))))
    return max(1, min(wanted, count // MIN_POINTS_PER_LIST))


def training_size(count: int, nlist: int) -> int:
    """Return how many stored vectors to sample for training ``nlist`` lists."""
    return min(count, nlist * TRAIN_POINTS_PER_LIST)


def needs_rebuild(backend: VectorBackend, count: int, settings: IndexSettings) -> bool:
    """Return whether a library now holding ``count`` vectors should get a freshly built backend."""
    if backend.name == EXACT:
        return count >= settings.ivf_threshold
    if count < settings.ivf_threshold // 2:  # well under the threshold (deletions): exact search is cheap again
        return True
    return count >= REGROW_FACTOR * max(backend.trained_on, 1)


def empty_exact(dim: int, settings: IndexSettings) -> FlatBackend:
    """Return an empty exact backend."""
    return FlatBackend(dim, use_gpu=settings.use_gpu)


def train_ivf(sample: np.ndarray, count: int, settings: IndexSettings) -> IVFBackend:
    """Return an empty IVF backend for a library of ``count`` vectors, trained on ``sample``."""
    return IVFBackend.train(sample, nlist_for(count, settings), settings.nprobe, count, settings.use_gpu)


def read_backend(kind: str, handle: Any, trained_on: int, settings: IndexSettings) -> VectorBackend:
    """Return the backend a snapshot recorded as ``kind``, read through ``handle``."""
    if kind == EXACT:
        return FlatBackend.read(handle, settings.use_gpu)
    if kind == IVF:
        return IVFBackend.read(handle, settings.nprobe, trained_on, settings.use_gpu)
    raise ValueError(f"unknown index backend {kind!r}")
