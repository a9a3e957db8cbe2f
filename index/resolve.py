"""Find an asset by id, following the aliases left by merged duplicates."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.db.models import Asset, AssetAlias


def resolve_asset(session: Session, asset_id: str) -> Asset | None:
    """Return the asset with this id, or the one it was merged into, or None."""
    asset = session.get(Asset, asset_id)
    if asset is not None:
        return asset
    alias = session.get(AssetAlias, asset_id)
    return session.get(Asset, alias.asset_id) if alias is not None else None
