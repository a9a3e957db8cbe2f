"""Store media that arrives as bytes (uploads, generated outputs): blob store copy, then index it."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

from core.blobs import BlobStore, sha256_file
from core.db.engine import write_session
from core.metrics import count_ingested
from core.settings import Settings, get_settings
from index.encoders import get_encoder
from index.ingest.claims import Sighting, claim, forget_claim
from index.ingest.discover import Candidate, kind_for
from index.ingest.embed import embed_assets
from index.ingest.prepare import PrepareContext, preparer_for
from index.ingest.prepared import Outcome
from index.ingest.writer import write_batch
from index.library import claim_model

P = ParamSpec("P")


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
    encoder = get_encoder(settings.encoder)
    with write_session(settings) as session:
        claim_model(session, encoder.model_id)
    blobs = BlobStore(settings.resolved_data_dir())
    suffix = Path(name).suffix.lower()
    key = f"blobs/{sha256}{suffix}"
    existed_before = blobs.exists(key)
    blobs.put_file(path, sha256, suffix)
    labels = list(tags or [])
    claimed = claim(settings, Sighting(sha256, size, kind, name, source, collection, labels, blob_key=key))
    if claimed.status != "claimed":
        return Outcome(name, "skipped", claimed.asset_id, "already stored")
    candidate = Candidate(
        blobs.path(key), kind, name, collection, labels, dict(metadata or {}), source=source, blob_key=key
    )
    try:
        prepared = preparer_for(kind)(candidate, sha256, size, PrepareContext(settings, encoder, blobs))
    except (ValueError, OSError) as exc:
        if claimed.created:  # nothing is kept of a file that cannot be decoded
            forget_claim(settings, claimed.asset_id)
            if not existed_before:
                blobs.delete(key)
        return Outcome(name, "failed", reason=str(exc))
    prepared.asset_id = claimed.asset_id
    embed_assets(encoder, [prepared])
    (outcome,) = write_batch(settings, [prepared], [], encoder.model_id)
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
