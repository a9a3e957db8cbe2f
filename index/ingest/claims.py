"""One asset per content: claim a sha256 before decoding it, or add the new labels and location to its asset.

A claim is the asset row itself, inserted as ``pending`` (sha256 is unique in the instance) and committed before
any decoding, so a second ingest of the same content, in this run or a concurrent one, skips it at once and only
records where it saw the file and with which collection and tags. A claim whose process died is taken over.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.engine import get_engine, write_session
from core.db.models import Asset, AssetCollection, AssetLocation, AssetTag, TextEntry, utcnow
from core.settings import Settings
from index.fulltext import asset_body

_OWNER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Sighting:
    """Where ingest saw a content and with which labels: a path (with its stat) or a blob key."""

    sha256: str
    size: int
    kind: str
    name: str
    source: str = "ingested"
    collection: str = "default"
    tags: list[str] = field(default_factory=list)
    path: str | None = None
    blob_key: str | None = None
    stat: os.stat_result | None = None


@dataclass
class Claim:
    """``claimed``: this process decodes the content; ``known``: it is (being) indexed; ``trashed``: in the trash."""

    asset_id: str
    status: Literal["claimed", "known", "trashed"]
    created: bool = False  # the claim inserted a new asset row

    @property
    def reason(self) -> str:
        """Return why a file was skipped."""
        if self.status == "trashed":
            return f"in the trash (asset {self.asset_id}; `sensorium assets restore` brings it back)"
        return "already indexed"


def _signed64(value: int) -> int:
    # st_ino and st_dev are unsigned 64-bit; the columns are signed BIGINT.
    return value - (1 << 64) if value >= 1 << 63 else value


def stat_fields(info: os.stat_result) -> dict[str, int]:
    """Return the recorded identity of a file: size, mtime_ns, inode and device."""
    return {
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "inode": _signed64(info.st_ino),
        "device": _signed64(info.st_dev),
    }


_KNOWN = select(Asset.id, Asset.status, Asset.trashed_at).where(Asset.sha256 == bindparam("sha256"))
_LABELLED = select(AssetCollection.collection).where(AssetCollection.asset_id == bindparam("asset_id"))
_TAGGED = select(AssetTag.tag).where(AssetTag.asset_id == bindparam("asset_id"))
_LOCATED = select(AssetLocation.size, AssetLocation.mtime_ns, AssetLocation.inode, AssetLocation.device).where(
    AssetLocation.asset_id == bindparam("asset_id"),
    AssetLocation.path == bindparam("path"),
    AssetLocation.needs_scan.is_(False),
)


def _nothing_new(settings: Settings, sighting: Sighting) -> Claim | None:
    """Return the claim of an indexed asset that already has every label and this location, without writing."""
    # A bare connection, not an ORM session: this runs once per file on a re-run over a finished library.
    with get_engine(settings).connect() as connection:
        row = connection.execute(_KNOWN, {"sha256": sighting.sha256}).first()
        if row is None or row.status != "indexed":
            return None
        if row.trashed_at is not None:
            return Claim(row.id, "trashed")
        params = {"asset_id": row.id, "path": sighting.path}
        if sighting.collection not in set(connection.execute(_LABELLED, params).scalars()):
            return None
        if not set(sighting.tags) <= set(connection.execute(_TAGGED, params).scalars()):
            return None
        if sighting.path is not None:
            located = connection.execute(_LOCATED, params).first()
            if located is None or sighting.stat is None or tuple(located) != tuple(stat_fields(sighting.stat).values()):
                return None
    if sighting.blob_key is not None:
        return None  # uploads are rare: let the write path check the blob location
    return Claim(row.id, "known")


def _owner_gone(owner: str | None) -> bool:
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _stale(asset: Asset, settings: Settings) -> bool:
    """Return whether a pending claim was abandoned: its process died, or its lease ran out."""
    if asset.claimed_by == _OWNER:
        return False
    expired = asset.updated_at < utcnow() - timedelta(seconds=settings.assets.claim_lease_s)
    return expired or _owner_gone(asset.claimed_by)


def _take(asset: Asset) -> None:
    asset.status = "pending"
    asset.error = None
    asset.claimed_by = _OWNER
    asset.updated_at = utcnow()


def attach(session: Session, asset: Asset, collections: list[str], tags: list[str]) -> bool:
    """Add collections and tags an asset lacks (refreshing its full-text row); return whether any was new."""
    new_collections = sorted(set(collections) - set(asset.collections))
    new_tags = sorted(set(tags) - set(asset.tags))
    asset.collection_rows.extend(AssetCollection(collection=c) for c in new_collections)
    asset.tag_rows.extend(AssetTag(tag=t) for t in new_tags)
    if new_tags and asset.status == "indexed":
        refresh_text(session, asset)
    return bool(new_collections or new_tags)


def refresh_text(session: Session, asset: Asset) -> None:
    """Rewrite the asset's full-text row (name and tags) after its name or tags changed."""
    row = session.execute(
        select(TextEntry).where(TextEntry.asset_id == asset.id, TextEntry.segment_id.is_(None))
    ).scalar_one_or_none()
    body = asset_body(asset.name, asset.tags)
    if row is None:
        session.add(TextEntry(asset_id=asset.id, segment_id=None, body=body))
    elif row.body != body:
        row.body = body


def _locate(session: Session, asset: Asset, sighting: Sighting) -> None:
    if sighting.blob_key is not None:
        if all(loc.blob_key != sighting.blob_key for loc in asset.locations):
            asset.locations.append(
                AssetLocation(blob_key=sighting.blob_key, size=sighting.size, sha256=sighting.sha256)
            )
        return
    if sighting.path is None:
        return
    fields = stat_fields(sighting.stat) if sighting.stat is not None else {}
    location = session.execute(select(AssetLocation).where(AssetLocation.path == sighting.path)).scalar_one_or_none()
    if location is None:
        location = AssetLocation(path=sighting.path)
        asset.locations.append(location)
    elif location.asset_id != asset.id:  # the path now holds this content: the location moves here
        location.asset_id = asset.id
        session.expire(asset, ["locations"])
    for name, value in fields.items():
        setattr(location, name, value)
    location.sha256 = sighting.sha256
    location.needs_scan = False
    location.scanned_at = utcnow()


def _claim_once(settings: Settings, sighting: Sighting) -> Claim:
    with write_session(settings) as session:
        asset = session.execute(select(Asset).where(Asset.sha256 == sighting.sha256)).scalar_one_or_none()
        created = asset is None
        if asset is None:
            asset = Asset(
                sha256=sighting.sha256,
                kind=sighting.kind,
                source=sighting.source,
                name=sighting.name,
                bytes=sighting.size,
                status="pending",
                claimed_by=_OWNER,
            )
            session.add(asset)
            session.flush()  # a concurrent claim of the same content fails here, on the unique sha256
        if asset.trashed_at is not None:
            return Claim(asset.id, "trashed")
        status: Literal["claimed", "known"] = "known"
        if created or asset.status == "failed" or (asset.status == "pending" and _stale(asset, settings)):
            _take(asset)
            status = "claimed"
        attach(session, asset, [sighting.collection], sighting.tags)
        _locate(session, asset, sighting)
        return Claim(asset.id, status, created)


def claim(settings: Settings, sighting: Sighting) -> Claim:
    """Claim a content for decoding, or record this sighting on the asset that already holds it."""
    known = _nothing_new(settings, sighting)
    if known is not None:
        return known
    try:
        return _claim_once(settings, sighting)
    except IntegrityError:  # another process claimed the same content (or path) a moment ago
        return _claim_once(settings, sighting)


def forget_claim(settings: Settings, asset_id: str) -> None:
    """Delete an asset this process created as a claim and that never got indexed."""
    with write_session(settings) as session:
        asset = session.get(Asset, asset_id)
        if asset is not None and asset.status == "pending" and asset.claimed_by == _OWNER:
            session.delete(asset)
