"""Asset operations every door calls (CLI, REST, agent tools, MCP): find, list, label, trash and restore."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from core.db.engine import read_session, write_session
from core.db.models import Asset, AssetCollection, AssetTag, Segment, utcnow
from core.settings import Settings
from index.ingest.claims import attach, refresh_text
from index.ingest.writer import log_changes
from index.resolve import resolve_asset


class AssetNotFound(LookupError):
    """No asset has this id (nor was one merged into another under it)."""


@dataclass
class AssetFilters:
    """Which assets a listing shows; ``trash`` picks the live ones (False), the trashed ones (True) or both (None)."""

    kind: str | None = None
    collection: str | None = None
    tags: list[str] = field(default_factory=list)
    source: str | None = None
    status: str | None = None
    trash: bool | None = False


def _filtered(statement: Select[Asset], filters: AssetFilters) -> Select[Asset]:
    if filters.kind:
        statement = statement.where(Asset.kind == filters.kind)
    if filters.collection:
        statement = statement.where(
            select(AssetCollection.asset_id)
            .where(AssetCollection.asset_id == Asset.id, AssetCollection.collection == filters.collection)
            .exists()
        )
    if filters.source:
        statement = statement.where(Asset.source == filters.source)
    if filters.status:
        statement = statement.where(Asset.status == filters.status)
    if filters.trash is not None:
        statement = statement.where(Asset.trashed_at.is_not(None) if filters.trash else Asset.trashed_at.is_(None))
    for tag in filters.tags:
        statement = statement.where(
            select(AssetTag.asset_id).where(AssetTag.asset_id == Asset.id, AssetTag.tag == tag).exists()
        )
    return statement


def list_assets(
    settings: Settings,
    filters: AssetFilters,
    limit: int,
    after: tuple[datetime, str] | None = None,
    offset: int = 0,
) -> list[Asset]:
    """Return up to ``limit`` assets newest first, after the (created_at, id) of the last one seen."""
    statement = _filtered(select(Asset), filters).order_by(Asset.created_at.desc(), Asset.id.desc())
    if after is not None:
        created, last_id = after
        statement = statement.where(
            or_(Asset.created_at < created, and_(Asset.created_at == created, Asset.id < last_id))
        )
    with read_session(settings) as session:
        return list(session.execute(statement.limit(limit).offset(offset)).scalars())


def _get(session: Session, asset_id: str) -> Asset:
    asset = resolve_asset(session, asset_id)
    if asset is None:
        raise AssetNotFound(f"no asset with id {asset_id!r}")
    return asset


def get_asset(settings: Settings, asset_id: str, include_trashed: bool = True) -> Asset:
    """Return an asset (following merge aliases); raise AssetNotFound."""
    with read_session(settings) as session:
        asset = _get(session, asset_id)
        if asset.trashed_at is not None and not include_trashed:
            raise AssetNotFound(f"asset {asset_id!r} is in the trash")
        return asset


def existing_assets(settings: Settings, asset_ids: Sequence[str]) -> list[Asset]:
    """Return the assets of those ids that exist (following merge aliases), in the order given."""
    with read_session(settings) as session:
        found = [resolve_asset(session, asset_id) for asset_id in asset_ids]
    return [asset for asset in found if asset is not None]


def _all(session: Session, asset_ids: Sequence[str]) -> list[Asset]:
    """Return the assets for every id, or raise AssetNotFound naming the missing ones (nothing is changed)."""
    found = {asset_id: resolve_asset(session, asset_id) for asset_id in asset_ids}
    missing = [asset_id for asset_id, asset in found.items() if asset is None]
    if missing:
        raise AssetNotFound(f"no asset with id {', '.join(repr(m) for m in missing)}")
    return list({asset.id: asset for asset in found.values() if asset is not None}.values())


def update_asset(
    settings: Settings,
    asset_id: str,
    *,
    name: str | None = None,
    tags: list[str] | None = None,
    collections: list[str] | None = None,
) -> Asset:
    """Rename an asset and replace its tags and collections (None leaves one as it is); return it."""
    with write_session(settings) as session:
        asset = _get(session, asset_id)
        if name is not None:
            asset.name = name
        if tags is not None:
            asset.tag_rows = [row for row in asset.tag_rows if row.tag in tags]
            attach(session, asset, [], tags)
        if collections is not None:
            asset.collection_rows = [row for row in asset.collection_rows if row.collection in collections]
            attach(session, asset, collections, [])
        asset.updated_at = utcnow()
        session.flush()
        refresh_text(session, asset)
        return asset


def relabel(
    settings: Settings,
    asset_ids: Sequence[str],
    *,
    add_tags: Sequence[str] = (),
    remove_tags: Sequence[str] = (),
    add_collections: Sequence[str] = (),
    remove_collections: Sequence[str] = (),
) -> list[Asset]:
    """Add and remove tags and collections on several assets in one transaction; return them."""
    with write_session(settings) as session:
        assets = _all(session, asset_ids)
        for asset in assets:
            asset.tag_rows = [row for row in asset.tag_rows if row.tag not in remove_tags]
            asset.collection_rows = [row for row in asset.collection_rows if row.collection not in remove_collections]
            attach(session, asset, list(add_collections), list(add_tags))
            asset.updated_at = utcnow()
        session.flush()
        for asset in assets:
            refresh_text(session, asset)
        return assets


def _segment_ids(session: Session, asset_id: str) -> list[int]:
    return list(session.execute(select(Segment.id).where(Segment.asset_id == asset_id)).scalars())


def trash_assets(settings: Settings, asset_ids: Sequence[str]) -> list[Asset]:
    """Move assets to the trash: hidden from search, their vectors out of every index; return them."""
    with write_session(settings) as session:
        assets = _all(session, asset_ids)
        for asset in assets:
            if asset.trashed_at is None:
                asset.trashed_at = utcnow()
                log_changes(session, _segment_ids(session, asset.id), "delete")
        return assets


def restore_assets(settings: Settings, asset_ids: Sequence[str]) -> list[Asset]:
    """Bring assets back from the trash: searchable again, their vectors back in every index; return them."""
    with write_session(settings) as session:
        assets = _all(session, asset_ids)
        for asset in assets:
            if asset.trashed_at is not None:
                asset.trashed_at = None
                log_changes(session, _segment_ids(session, asset.id), "add")
        return assets


def known_ids(settings: Settings, words: Sequence[str]) -> list[str]:
    """Return the leading words that are asset ids (the CLI's `ID... LABEL...` arguments)."""
    with read_session(settings) as session:
        ids: list[str] = []
        for word in words:
            if resolve_asset(session, word) is None:
                break
            ids.append(word)
        return ids
