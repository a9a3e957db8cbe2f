"""Purge the trash and sweep the blob store: a file goes once nothing references its key and it is old enough.

The grace period (``assets.gc_grace_s``, an hour by default) spares keys an ingest may be writing right now and
has not committed yet; writing a key that already exists refreshes its time, so it is spared too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from core.blobs import BlobStore
from core.db.engine import read_session, write_session
from core.db.models import Asset, AssetLocation, Segment, utcnow
from core.settings import Settings


@dataclass
class SweepSummary:
    """What a purge or a sweep removed."""

    assets: int = 0
    files: int = 0
    bytes: int = 0


def _referenced(settings: Settings, keys: Iterable[str] | None = None) -> set[str]:
    """Return which of ``keys`` (all keys when None) rows still reference."""
    wanted = None if keys is None else list(keys)
    queries = [
        select(AssetLocation.blob_key).where(AssetLocation.blob_key.is_not(None)),
        select(Asset.thumbnail_key).where(Asset.thumbnail_key.is_not(None)),
        select(Segment.thumbnail_key).where(Segment.thumbnail_key.is_not(None)),
    ]
    found: set[str] = set()
    with read_session(settings) as session:
        for query in queries:
            column = query.selected_columns[0]
            if wanted is not None:
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    found.update(k for k in session.execute(query.where(column.in_(chunk))).scalars() if k)
            else:
                found.update(k for k in session.execute(query.distinct()).scalars() if k)
    return found


def _remove_unreferenced(settings: Settings, keys: Iterable[tuple[str, float]]) -> SweepSummary:
    blobs = BlobStore(settings.resolved_data_dir())
    candidates = dict(keys)
    referenced = _referenced(settings, candidates)
    cutoff = time.time() - settings.assets.gc_grace_s
    summary = SweepSummary()
    for key, mtime in candidates.items():
        if key in referenced or mtime > cutoff:
            continue
        path = blobs.path(key)
        try:
            current = path.stat()
        except FileNotFoundError:
            continue
        if current.st_mtime > cutoff:  # rewritten since it was listed
            continue
        summary.bytes += current.st_size
        blobs.delete(key)
        summary.files += 1
    return summary


def _keys_with_times(blobs: BlobStore, keys: Iterable[str]) -> list[tuple[str, float]]:
    out = []
    for key in set(keys):
        try:
            out.append((key, blobs.path(key).stat().st_mtime))
        except (FileNotFoundError, ValueError):
            continue
    return out


def purge_trash(settings: Settings, older_than_days: float | None = None) -> SweepSummary:
    """Delete assets trashed longer ago than the setting (or ``older_than_days``), then their unused files."""
    days = settings.assets.trash_days if older_than_days is None else older_than_days
    cutoff = utcnow() - timedelta(days=days)
    keys: list[str] = []
    with write_session(settings) as session:
        assets = list(
            session.execute(select(Asset).where(Asset.trashed_at.is_not(None), Asset.trashed_at <= cutoff)).scalars()
        )
        for asset in assets:
            keys.extend(loc.blob_key for loc in asset.locations if loc.blob_key)
            thumbnails = select(Segment.thumbnail_key).where(Segment.asset_id == asset.id)
            keys.extend(k for k in session.execute(thumbnails).scalars() if k)
            if asset.thumbnail_key:
                keys.append(asset.thumbnail_key)
            # Its vectors left the index when it was trashed; the rows go now (segments cascade).
            session.delete(asset)
    summary = _remove_unreferenced(settings, _keys_with_times(BlobStore(settings.resolved_data_dir()), keys))
    summary.assets = len(assets)
    return summary


def collect_garbage(settings: Settings) -> SweepSummary:
    """Purge the expired trash, then remove every blob and thumbnail file no row references."""
    summary = purge_trash(settings)
    swept = _remove_unreferenced(settings, BlobStore(settings.resolved_data_dir()).stored_keys())
    return SweepSummary(summary.assets, summary.files + swept.files, summary.bytes + swept.bytes)
