"""Near-duplicate operations every door calls: list groups, an asset's group, re-hash, keep one, merge labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.db.engine import read_session, write_session
from core.db.hash_models import AssetVariant
from core.db.models import Asset, Segment
from core.settings import Settings, get_settings
from index.duplicates.groups import Group, hash_neighbours, leader_groups
from index.duplicates.store import LIVE, in_collection, load_hashes, variant_ids
from index.services.assets import relabel, trash_assets

TIERS = ("exact", "near", "similar")


class DuplicateError(ValueError):
    """A request the caller must change: unknown tier, unknown asset, an asset in no group."""


class TierUnavailable(DuplicateError):
    """The tier cannot give meaningful groups here (the similar tier on random encoder weights)."""


class UnknownAsset(DuplicateError, LookupError):
    """No asset has this id."""


@dataclass
class DuplicateGroup:
    """A group, best copy first: each member with its facts and its distance to the best."""

    tier: str
    members: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        """Return the best member (largest, then oldest, then most tagged)."""
        return self.members[0]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape shared by the CLI and REST."""
        return {"tier": self.tier, "best_id": self.best["id"], "size": len(self.members), "members": self.members}


def _describe(asset: Asset, distance: float | None, best: Asset | None, variant_of: str | None) -> dict[str, Any]:
    pixels = (asset.width or 0) * (asset.height or 0)
    member: dict[str, Any] = {
        "id": asset.id,
        "name": asset.name,
        "uri": asset.uri or asset.blob_key,
        "kind": asset.kind,
        "collections": asset.collections,
        "tags": asset.tags,
        "width": asset.width,
        "height": asset.height,
        "bytes": asset.bytes,
        "created_at": asset.created_at.isoformat(),
        "distance": distance,
        "variant_of": variant_of,
    }
    if best is not None:  # how this copy differs from the best one
        best_pixels = (best.width or 0) * (best.height or 0)
        member["differences"] = {
            "size": f"{asset.width}x{asset.height} vs {best.width}x{best.height}",
            "pixels_ratio": round(pixels / best_pixels, 3) if best_pixels else None,
            "bytes_delta": asset.bytes - best.bytes,
            "newer_by_s": round((_naive(asset.created_at) - _naive(best.created_at)).total_seconds(), 3),
        }
    return member


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def _rank(asset: Asset) -> tuple[int, datetime, int, str]:
    return -((asset.width or 0) * (asset.height or 0)), _naive(asset.created_at), -len(asset.tag_rows), asset.id


def _exact_groups(session: Session, collection: str | None) -> list[DuplicateGroup]:
    """Return one group per content found at several places: its locations, oldest first (sha256 is unique)."""
    from core.db.models import AssetLocation

    several = select(AssetLocation.asset_id).group_by(AssetLocation.asset_id).having(func.count() > 1)
    statement = select(Asset).where(*LIVE, Asset.id.in_(several))
    if collection is not None:
        statement = statement.where(in_collection(collection))
    groups = []
    for asset in session.execute(statement).scalars():
        group = DuplicateGroup("exact")
        for number, location in enumerate(asset.locations):
            member = _describe(asset, None if number == 0 else 0.0, None, None)
            member["uri"] = location.path or location.blob_key
            member["created_at"] = location.created_at.isoformat()
            group.members.append(member)
        groups.append(group)
    return groups


def near_group_ids(session: Session, collection: str | None, settings: Settings) -> list[list[tuple[str, float]]]:
    """Return the near groups as (asset id, distance to the best) lists, best first: found, not yet described."""
    stored = load_hashes(session, collection)
    neighbours = hash_neighbours(
        stored.owners, stored.phash, stored.dhash, settings.duplicates.near_max_distance, settings.duplicates.tables
    )
    groups = leader_groups(neighbours, rank=stored.rank, kind=lambda i: stored.kinds[i])
    return [_ids(group, stored.asset_ids) for group in groups]


def _ids(group: Group, asset_ids: list[str]) -> list[tuple[str, float]]:
    return [(asset_ids[group.best], 0.0), *((asset_ids[m], float(d)) for m, d in group.members)]


def _similar_groups(session: Session, collection: str | None, settings: Settings) -> list[list[tuple[str, float]]]:
    """Group assets whose image or frame vectors have at least the configured cosine (exact search)."""
    if settings.encoder.pretrained.strip().lower() == "none":
        raise TierUnavailable(
            "the similar tier is off: the encoder runs on random weights (SENSORIUM_ENCODER__PRETRAINED=none), "
            "so vector cosine says nothing about content; configure pretrained weights to use it"
        )
    import faiss

    statement = (
        select(Segment.asset_id, Segment.vector, Asset.kind)
        .join(Asset, Asset.id == Segment.asset_id)
        .where(Segment.kind.in_(["image", "frame"]), *LIVE)
    )
    if collection is not None:
        statement = statement.where(in_collection(collection))
    rows = session.execute(statement).all()
    if len(rows) < 2:
        return []
    asset_ids = sorted({row[0] for row in rows})
    index_of = {asset_id: i for i, asset_id in enumerate(asset_ids)}
    kinds = {index_of[row[0]]: row[2] for row in rows}
    vectors = np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
    owners = np.array([index_of[row[0]] for row in rows])
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    lims, scores, found = flat.range_search(vectors, settings.duplicates.similar_min_cosine)
    neighbours: dict[int, dict[int, float]] = {}
    for row in range(len(rows)):
        for score, other in zip(scores[lims[row] : lims[row + 1]], found[lims[row] : lims[row + 1]], strict=True):
            a, b = int(owners[row]), int(owners[other])
            if a != b:
                distance = round(1.0 - float(score), 4)
                neighbours.setdefault(a, {})[b] = min(distance, neighbours.get(a, {}).get(b, distance))
    assets = {a.id: a for a in session.execute(select(Asset).where(Asset.id.in_(asset_ids))).scalars()}
    groups = leader_groups(neighbours, rank=lambda i: _rank(assets[asset_ids[i]]), kind=kinds.__getitem__)
    return [_ids(group, asset_ids) for group in groups]


def _hydrated(session: Session, tier: str, raw: list[list[tuple[str, float]]]) -> list[DuplicateGroup]:
    wanted = [asset_id for group in raw for asset_id, _ in group]
    assets = {a.id: a for a in session.execute(select(Asset).where(Asset.id.in_(wanted))).scalars()}
    variants = variant_ids(session)
    groups = []
    for members in raw:
        ordered = sorted(members, key=lambda pair: _rank(assets[pair[0]]))
        best = assets[ordered[0][0]]
        group = DuplicateGroup(tier)
        for asset_id, distance in ordered:
            asset = assets[asset_id]
            is_best = asset is best
            group.members.append(
                _describe(asset, None if is_best else distance, None if is_best else best, variants.get(asset_id))
            )
        groups.append(group)
    groups.sort(key=lambda g: (-len(g.members), _rank(assets[g.best["id"]])))
    return groups


def find_groups(
    tier: str = "near", collection: str | None = None, settings: Settings | None = None
) -> list[DuplicateGroup]:
    """Return the duplicate groups of a tier (exact, near or similar), largest groups first."""
    settings = settings or get_settings()
    if tier not in TIERS:
        raise DuplicateError(f"unknown tier {tier!r}: use {', '.join(TIERS)}")
    with read_session(settings) as session:
        if tier == "exact":
            return _exact_groups(session, collection)
        if tier == "near":
            raw = near_group_ids(session, collection, settings)
        else:
            raw = _similar_groups(session, collection, settings)
        return _hydrated(session, tier, raw)


def group_of(asset_id: str, tier: str = "near", settings: Settings | None = None) -> DuplicateGroup | None:
    """Return the group holding an asset, or None when it has no duplicate."""
    settings = settings or get_settings()
    with read_session(settings) as session:
        if session.get(Asset, asset_id) is None:
            raise UnknownAsset(f"no asset with id {asset_id!r}")
    return next((g for g in find_groups(tier, None, settings) if any(m["id"] == asset_id for m in g.members)), None)


@dataclass
class GroupAction:
    """What acting on a group did: the asset kept, those trashed, the labels it gained."""

    kept: str
    trashed: list[str]
    added_labels: list[str]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape shared by the CLI and REST."""
        return {"kept": self.kept, "trashed": self.trashed, "added_labels": self.added_labels}


def act_on_group(
    keep_id: str, *, trash_others: bool, merge_labels: bool, tier: str = "near", settings: Settings | None = None
) -> GroupAction:
    """Keep ``keep_id`` out of its group: merge the others' tags into it and/or send the others to the trash."""
    settings = settings or get_settings()
    if not (trash_others or merge_labels):
        raise DuplicateError("nothing to do: trash the others, merge their labels, or both")
    if tier == "exact":
        raise DuplicateError("exact copies are one asset at several locations: there is no other asset to act on")
    group = group_of(keep_id, tier, settings)
    if group is None:
        raise DuplicateError(f"asset {keep_id} has no {tier} duplicates")
    others = [m["id"] for m in group.members if m["id"] != keep_id]
    added = _merge_into(keep_id, others, merge_labels, settings)
    if trash_others:
        trash_assets(settings, others)  # the assets service's trash: purge and gc later take their files
    return GroupAction(keep_id, others if trash_others else [], added)


def _merge_into(keep_id: str, others: list[str], merge_labels: bool, settings: Settings) -> list[str]:
    """Point the others' variants at the kept asset and, if asked, give it their tags and collections.

    Return the tags and collections (as ``collection:NAME``) it gained.
    """
    with write_session(settings) as session:
        session.execute(update(AssetVariant).where(AssetVariant.best_id.in_(others)).values(best_id=keep_id))
        session.execute(delete(AssetVariant).where(AssetVariant.asset_id == keep_id))
        if not merge_labels:
            return []
        kept = session.get(Asset, keep_id)
        assert kept is not None  # group_of checked it
        tags: set[str] = set()
        collections: set[str] = set()
        for other in session.execute(select(Asset).where(Asset.id.in_(others))).scalars():
            tags.update(other.tags)
            collections.update(other.collections)
        new_tags, new_collections = sorted(tags - set(kept.tags)), sorted(collections - set(kept.collections))
    relabel(settings, [keep_id], add_tags=new_tags, add_collections=new_collections)
    return [*new_tags, *(f"collection:{name}" for name in new_collections)]
