"""One factory for encoders: settings in, a cached encoder out (one per configuration per process)."""

from __future__ import annotations

import threading

from core.settings import EncoderSettings, get_settings
from index.encoders.base import Encoder

_cache: dict[str, Encoder] = {}
_lock = threading.Lock()


def get_encoder(settings: EncoderSettings | None = None) -> Encoder:
    """Return the encoder for these settings (default: the process settings), built once and cached."""
    settings = settings or get_settings().encoder
    key = settings.model_dump_json()
    with _lock:
        encoder = _cache.get(key)
        if encoder is None:
            from index.encoders.openclip import OpenClipEncoder

            encoder = OpenClipEncoder(settings)
            _cache[key] = encoder
    return encoder
