"""Store media that arrives as bytes (uploads, generated outputs): blob store copy, then index it."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

from sqlalchemy import select

from core.blobs import BlobStore, sha256_file
from core.db.engine import read_session, write_session
from core.db.models import Asset
from core.metrics import count_ingested
from core.settings import Settings, get_settings
from index.encoders import get_encoder
from index.ingest.discover import Candidate, kind_for
from index.ingest.embed import embed_assets
from index.ingest.prepare import PrepareContext, preparer_for
from index.ingest.prepared import Outcome
from index.ingest.writer import write_batch
from index.library import claim_model

P = ParamSpec("P")


def _existing(settings: Settings, collection: str, sha256: str) -> str | None:
    with read_session(settings) as session:
        return session.execute(
            select(Asset.id).where(Asset.collection == collection, Asset.sha256 == sha256, Asset.status == "indexed")
        ).scalar_one_or_none()


def _counted(store: Callable[P, Outcome]) -> Callable[P, Outcome]:
    """Count each outcome in the ingest metrics (core/metrics.py)."""

    @functools.wraps(store)
    def counted(*args: P.args, **kwargs: P.kwargs) -> Outcome:
        outcome = store(*args, **kwargs)
        count_ingested([outcome.status])
        return outcome

    return counted


@_counted
def store_file(
    path: Path,
    *,
    name: str,
    source: str = "uploaded",
    kind: str | None = None,
    collection: str = "default",
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> Outcome:
    """Copy a file into the blob store and index it; a duplicate returns the existing asset as ``skipped``.

    A file that cannot be decoded returns a ``failed`` outcome with the reason, and nothing is kept.
    """
    settings = settings or get_settings()
    kind = kind or kind_for(Path(name))
    if kind is None:
        return Outcome(name, "failed", reason=f"unsupported file type {Path(name).suffix or '(no extension)'!r}")
    size = path.stat().st_size
    if size == 0:
        return Outcome(name, "failed", reason="empty file (0 bytes)")
    sha256 = sha256_file(path)
    existing = _existing(settings, collection, sha256)
    if existing is not None:
        return Outcome(name, "skipped", existing, "already stored")
    encoder = get_encoder(settings.encoder)
    with write_session(settings) as session:
        claim_model(session, encoder.model_id)
    blobs = BlobStore(settings.resolved_data_dir())
    suffix = Path(name).suffix.lower()
    key = f"blobs/{sha256}{suffix}"
    existed_before = blobs.exists(key)
    blobs.put_file(path, sha256, suffix)
    candidate = Candidate(
        blobs.path(key), kind, name, collection, list(tags or []), dict(metadata or {}), source=source, blob_key=key
    )
    try:
        prepared = preparer_for(kind)(candidate, sha256, size, PrepareContext(settings, encoder, blobs))
    except (ValueError, OSError) as exc:
        if not existed_before:
            blobs.delete(key)
        return Outcome(name, "failed", reason=str(exc))
    embed_assets(encoder, [prepared])
    (outcome,) = write_batch(settings, [prepared], [], encoder.model_id)
    if outcome.status == "skipped":  # a concurrent store of the same content won
        outcome.asset_id = _existing(settings, collection, sha256)
    outcome.path = name
    return outcome


def store_bytes(data: bytes, *, name: str, **options: Any) -> Outcome:
    """Store in-memory media (e.g. a generated image) under ``name``; see ``store_file``."""
    fd, tmp_name = tempfile.mkstemp(prefix="sensorium-store-", suffix=Path(name).suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return store_file(Path(tmp_name), name=name, **options)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
