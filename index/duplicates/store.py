"""Reading and writing perceptual hashes and variant links (the database side of near-duplicates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from core.db.hash_models import AssetVariant, PerceptualHash
from core.db.models import Asset, AssetCollection, AssetTag
from index.ingest.prepared import PreparedAsset

# Assets that take part in duplicate groups: indexed and not in the trash.
LIVE = (Asset.status == "indexed", Asset.trashed_at.is_(None))


def in_collection(collection: str) -> ColumnElement[bool]:
    """Return a condition: the asset belongs to this collection."""
    return (
        select(AssetCollection.asset_id)
        .where(AssetCollection.asset_id == Asset.id, AssetCollection.collection == collection)
        .exists()
    )


def add_hashes(session: Session, asset: Asset, prepared: PreparedAsset) -> None:
    """Add the prepared asset's hash rows (and its variant link) to a new asset; the caller commits."""
    for t_start, phash, dhash in prepared.hashes:
        session.add(PerceptualHash(asset=asset, t_start=t_start, phash=phash, dhash=dhash))
    if prepared.variant_of is not None:
        best_id, distance = prepared.variant_of
        session.add(AssetVariant(asset=asset, best_id=best_id, distance=distance))


@dataclass
class StoredHashes:
    """Every stored hash row (aligned arrays) and, per asset index, what ranks and describes it."""

    owners: np.ndarray  # asset index of each hash row
    phash: np.ndarray
    dhash: np.ndarray
    asset_ids: list[str]
    kinds: list[str]
    pixels: list[int]
    created: list[datetime]
    tag_counts: list[int]

    def rank(self, index: int) -> tuple[int, datetime, int, str]:
        """Return the sort key of an asset, best first: largest, then oldest, then most tagged."""
        return -self.pixels[index], self.created[index], -self.tag_counts[index], self.asset_ids[index]


def load_hashes(session: Session, collection: str | None = None) -> StoredHashes:
    """Return the hashes of every indexed asset (of one collection), with their assets' ranking facts."""
    tags = select(AssetTag.asset_id, func.count().label("n")).group_by(AssetTag.asset_id).subquery()
    assets = (
        select(Asset.id, Asset.kind, Asset.width, Asset.height, Asset.created_at, func.coalesce(tags.c.n, 0))
        .outerjoin(tags, tags.c.asset_id == Asset.id)
        .where(*LIVE)
    )
    if collection is not None:
        assets = assets.where(in_collection(collection))
    rows = session.execute(assets.where(Asset.id.in_(select(PerceptualHash.asset_id)))).all()
    index = {row[0]: i for i, row in enumerate(rows)}
    hashes = session.execute(select(PerceptualHash.asset_id, PerceptualHash.phash, PerceptualHash.dhash)).all()
    kept = [(index[a], p, d) for a, p, d in hashes if a in index]
    columns = np.array(kept, dtype=np.int64).reshape(-1, 3)
    return StoredHashes(
        owners=columns[:, 0],
        phash=columns[:, 1],
        dhash=columns[:, 2],
        asset_ids=[row[0] for row in rows],
        kinds=[row[1] for row in rows],
        pixels=[(row[2] or 0) * (row[3] or 0) for row in rows],
        created=[row[4] for row in rows],
        tag_counts=[int(row[5]) for row in rows],
    )


def variant_ids(session: Session) -> dict[str, str]:
    """Return {variant asset id: its best asset id}."""
    return dict(session.execute(select(AssetVariant.asset_id, AssetVariant.best_id)).tuples().all())
