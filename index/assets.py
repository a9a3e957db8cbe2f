"""Permanent deletion of one asset at once (the trash, in index/services/assets.py, is the usual way)."""

from __future__ import annotations

from sqlalchemy import delete, select

from core.db.engine import write_session
from core.db.models import Asset, Segment
from core.settings import Settings, get_settings
from index.ingest.writer import log_changes
from index.services.assets import AssetNotFound

__all__ = ["AssetNotFound", "delete_asset"]


def delete_asset(asset_id: str, settings: Settings | None = None) -> int:
    """Delete an asset and its segments, logging each removal; return how many segments went."""
    settings = settings or get_settings()
    with write_session(settings) as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise AssetNotFound(f"no asset with id {asset_id!r}")
        segment_ids = list(session.execute(select(Segment.id).where(Segment.asset_id == asset_id)).scalars())
        session.execute(delete(Segment).where(Segment.asset_id == asset_id))
        session.execute(delete(Asset).where(Asset.id == asset_id))
        if asset.trashed_at is None:  # a trashed asset's vectors already left the index
            log_changes(session, segment_ids, "delete")
    return len(segment_ids)
