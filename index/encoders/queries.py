"""Text query vectors for search: a per-process LRU cache in front of the encoder, and micro-batching."""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict

import numpy as np

from core.settings import EncoderSettings
from index.encoders.base import Encoder
from index.encoders.batcher import TextBatcher
from index.encoders.factory import get_encoder


def normalised_query(text: str) -> str:
    """Return the text as the cache keys it: Unicode NFC, whitespace runs collapsed, ends stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class QueryCache:
    """A thread-safe LRU of query vectors keyed by (model id, normalised text)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        """Return a copy of the cached vector, or None."""
        with self._lock:
            vector = self._items.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vector.copy()

    def put(self, key: tuple[str, str], vector: np.ndarray) -> None:
        """Keep a copy of the vector, dropping the least recently used entries beyond the size."""
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = vector.copy()
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class QueryEncoder:
    """Text -> query vector (1, dim): cached, and batched with concurrent queries when asked to."""

    def __init__(self, encoder: Encoder, settings: EncoderSettings) -> None:
        self.encoder = encoder
        self.cache = QueryCache(settings.query_cache_size)
        wait_s = settings.query_batch_wait_ms / 1000
        self.batcher = TextBatcher(encoder.encode_texts, wait_s, settings.query_batch_max) if wait_s > 0 else None

    def encode(self, text: str, batched: bool = False) -> np.ndarray:
        """Return the normalised query vector as one row; ``batched`` joins concurrent queries (serve)."""
        query = normalised_query(text)
        key = (self.encoder.model_id, query)
        vector = self.cache.get(key)
        if vector is None:
            if batched and self.batcher is not None:
                vector = self.batcher.encode(query)
            else:
                vector = self.encoder.encode_texts([query])[0]
            self.cache.put(key, vector)
        return vector.reshape(1, -1)


_query_encoders: dict[str, QueryEncoder] = {}
_lock = threading.Lock()


def get_query_encoder(settings: EncoderSettings) -> QueryEncoder:
    """Return this process's query encoder for these settings (one cache and batcher per configuration)."""
    key = settings.model_dump_json(exclude={"export_dir"})
    with _lock:
        query_encoder = _query_encoders.get(key)
        if query_encoder is None:
            query_encoder = QueryEncoder(get_encoder(settings), settings)
            _query_encoders[key] = query_encoder
    return query_encoder
