"""Sending the other copies of a group away: the one place that will call the assets service's trash.

Until the trash lands (issue #14), this removes the assets on the existing delete path (segments leave the index
through the change log) and then their blob-store files (uploaded content, thumbnails) that no asset still uses:
the state a purged trash leaves behind.
"""

from __future__ import annotations

from sqlalchemy import select

from core.blobs import BlobStore
from core.db.engine import read_session
from core.db.models import Asset, Segment
from core.settings import Settings
from index.assets import delete_asset

_FILE_COLUMNS = (
    (Asset.blob_key, Asset.id),
    (Asset.thumbnail_key, Asset.id),
    (Segment.thumbnail_key, Segment.asset_id),
)


def _keys(settings: Settings, asset_ids: list[str] | None = None, among: set[str] | None = None) -> set[str]:
    """Return the blob-store keys that the given assets use, or that any asset uses out of ``among``."""
    found: set[str] = set()
    with read_session(settings) as session:
        for column, owner in _FILE_COLUMNS:
            statement = select(column).where(column.is_not(None))
            statement = statement.where(owner.in_(asset_ids)) if asset_ids is not None else statement
            statement = statement.where(column.in_(among)) if among is not None else statement
            found.update(key for key in session.execute(statement).scalars() if key)
    return found


def trash_assets(asset_ids: list[str], settings: Settings) -> None:
    """Remove assets with their vectors, then their blobs and thumbnails that no other asset shares."""
    keys = _keys(settings, asset_ids=asset_ids)
    for asset_id in asset_ids:
        delete_asset(asset_id, settings)
    blobs = BlobStore(settings.resolved_data_dir())
    for key in keys - _keys(settings, among=keys):
        blobs.delete(key)
