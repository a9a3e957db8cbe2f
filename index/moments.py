"""The picture of a search result's moment: a scene's own frame, else the video frame showing that time, else the asset's."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.models import Asset, Segment


class MomentNotFound(LookupError):
    """No such segment in this asset."""


def moment_thumbnail_key(session: Session, asset_id: str, segment_id: int) -> str | None:
    """Return the thumbnail blob key for ``segment_id`` of ``asset_id`` (None when the asset has none)."""
    segment = session.get(Segment, segment_id)
    asset = session.get(Asset, asset_id)
    if segment is None or asset is None or segment.asset_id != asset_id:
        raise MomentNotFound(f"asset {asset_id!r} has no segment {segment_id}")
    if segment.thumbnail_key:
        return segment.thumbnail_key
    if asset.kind == "video" and segment.t_start is not None:  # words spoken in a scene: show that scene
        frame = session.execute(
            select(Segment.thumbnail_key)
            .where(
                Segment.asset_id == asset_id,
                Segment.kind == "frame",
                Segment.thumbnail_key.is_not(None),
                Segment.t_start <= segment.t_start,
            )
            .order_by(Segment.t_start.desc())
            .limit(1)
        ).scalar_one_or_none()
        if frame:
            return frame
    return asset.thumbnail_key  # images, and audio (its poster is its first spectrogram window)

