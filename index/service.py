"""The process-wide live index for the configured database and model."""

from __future__ import annotations

import threading
from pathlib import Path

from core.db.engine import read_session
from core.settings import Settings, get_settings
from index.encoders import get_encoder
from index.vector.live import LiveIndex

_indexes: dict[tuple[str, str], LiveIndex] = {}
_lock = threading.Lock()


def snapshot_path(settings: Settings) -> Path:
    """Return where this data dir keeps its index snapshot."""
    return settings.resolved_data_dir() / "index" / "vectors.snapshot"


def get_live_index(settings: Settings | None = None) -> LiveIndex:
    """Return this process's live index, loaded on first use and caught up from the change log."""
    settings = settings or get_settings()
    encoder = get_encoder(settings.encoder)
    key = (settings.resolved_database_url(), encoder.model_id)
    with _lock:
        index = _indexes.get(key)
        if index is None:
            index = LiveIndex(encoder.model_id, encoder.dim, snapshot_path(settings))
            with read_session(settings) as session:
                index.load(session)
            _indexes[key] = index
    return index


def forget_live_indexes() -> None:
    """Drop every cached index (after a rebuild, and between tests)."""
    with _lock:
        _indexes.clear()
