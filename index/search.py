"""Search: a query vector -> FAISS top-k with oversampling -> filters -> best segment per asset -> page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.db.engine import read_session
from core.db.models import Asset, AssetTag, Segment
from core.settings import Settings, get_settings
from index.encoders import get_encoder
from index.ingest.images import encoder_ready, open_image
from index.service import get_live_index
from index.vector.live import vectors_from_bytes

_ID_CHUNK = 900  # below SQLite's bound-parameter limits on old builds
_MIN_K = 64


class SearchError(ValueError):
    """The search request itself is invalid (no query, unknown asset, unreadable image)."""


@dataclass
class SearchFilters:
    """Restrictions applied after the vector search; tags must all be present."""

    kinds: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass
class SearchRequest:
    """Exactly one of text, image, asset_id (more like this) or vector, plus filters and paging."""

    text: str | None = None
    image: Path | bytes | None = None
    asset_id: str | None = None
    vector: np.ndarray | None = None
    filters: SearchFilters = field(default_factory=SearchFilters)
    min_score: float | None = None
    limit: int = 10
    offset: int = 0


@dataclass
class SegmentHit:
    """The segment that matched best within an asset."""

    id: int
    kind: str
    t_start: float | None
    t_end: float | None
    text: str | None


@dataclass
class SearchResult:
    """One asset in the results, in the shape shared by CLI, REST and agent."""

    asset_id: str
    name: str
    uri: str | None
    kind: str
    score: float | None
    fused_score: float | None
    segment: SegmentHit
    thumbnail_key: str | None = None

    def to_dict(self, url_for: Callable[[str, str], str | None] | None = None) -> dict[str, Any]:
        """Return the public result shape; ``url_for(asset_id, 'content'|'thumbnail')`` fills URLs on the API."""
        return {
            "asset_id": self.asset_id,
            "name": self.name,
            "uri": self.uri,
            "kind": self.kind,
            "score": self.score,
            "fused_score": self.fused_score,
            "segment": asdict(self.segment),
            "thumbnail_url": url_for(self.asset_id, "thumbnail") if url_for else None,
            "content_url": url_for(self.asset_id, "content") if url_for else None,
        }


def validate(request: SearchRequest) -> None:
    """Raise SearchError for a request that cannot run."""
    given = [
        request.text is not None,
        request.image is not None,
        request.asset_id is not None,
        request.vector is not None,
    ]
    if sum(given) != 1:
        raise SearchError("give exactly one of: text, image, asset_id (more like this)")
    if request.text is not None and not request.text.strip():
        raise SearchError("text query is empty")
    if not 1 <= request.limit <= 1000:
        raise SearchError("limit must be between 1 and 1000")
    if request.offset < 0:
        raise SearchError("offset must be 0 or more")
    if request.min_score is not None and not np.isfinite(request.min_score):
        raise SearchError("min_score must be a finite number")


def _query_vector(request: SearchRequest, session: Session, settings: Settings) -> np.ndarray:
    encoder = get_encoder(settings.encoder)
    if request.vector is not None:
        vector = np.asarray(request.vector, dtype=np.float32).reshape(1, -1)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)
    if request.text is not None:
        return encoder.encode_texts([request.text])
    if request.image is not None:
        try:
            image, _ = open_image(request.image, settings.ingest.max_image_pixels)
        except ValueError as exc:
            raise SearchError(f"query image unusable: {exc}") from None
        return encoder.encode_images([encoder_ready(image)])
    return _asset_vector(session, request.asset_id or "", encoder.model_id, encoder.dim)


def _asset_vector(session: Session, asset_id: str, model_id: str, dim: int) -> np.ndarray:
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise SearchError(f"no asset with id {asset_id!r}")
    blobs = (
        session.execute(
            select(Segment.vector).where(
                Segment.asset_id == asset_id, Segment.model_id == model_id, Segment.kind != "transcript"
            )
        )
        .scalars()
        .all()
    )
    if not blobs:
        raise SearchError(f"asset {asset_id!r} has no indexed vectors to compare with")
    mean = vectors_from_bytes(list(blobs), dim).mean(axis=0, keepdims=True)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _filtered(statement: Select[Segment, Asset], filters: SearchFilters) -> Select[Segment, Asset]:
    if filters.kinds:
        statement = statement.where(Asset.kind.in_(filters.kinds))
    if filters.collections:
        statement = statement.where(Asset.collection.in_(filters.collections))
    if filters.sources:
        statement = statement.where(Asset.source.in_(filters.sources))
    for tag in filters.tags:
        statement = statement.where(
            select(AssetTag.asset_id).where(AssetTag.asset_id == Asset.id, AssetTag.tag == tag).exists()
        )
    return statement


def _hydrate(session: Session, ids: Sequence[int], filters: SearchFilters) -> dict[int, tuple[Segment, Asset]]:
    rows: dict[int, tuple[Segment, Asset]] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = list(ids[start : start + _ID_CHUNK])
        statement = _filtered(
            select(Segment, Asset)
            .join(Asset, Segment.asset_id == Asset.id)
            .where(Segment.id.in_(chunk), Asset.status == "indexed"),
            filters,
        )
        for segment, asset in session.execute(statement).all():
            rows[segment.id] = (segment, asset)
    return rows


def _group(
    scores: np.ndarray, ids: np.ndarray, rows: dict[int, tuple[Segment, Asset]], exclude: str | None
) -> list[SearchResult]:
    best: dict[str, SearchResult] = {}
    for score, segment_id in zip(scores.tolist(), ids.tolist(), strict=True):
        hit = rows.get(segment_id)
        if hit is None:
            continue
        segment, asset = hit
        if asset.id == exclude or asset.id in best:
            continue  # hits arrive best first, so the first per asset is its best segment
        best[asset.id] = SearchResult(
            asset_id=asset.id,
            name=asset.name,
            uri=asset.uri or asset.blob_key,
            kind=asset.kind,
            score=float(score),
            fused_score=None,
            segment=SegmentHit(segment.id, segment.kind, segment.t_start, segment.t_end, segment.text),
            thumbnail_key=segment.thumbnail_key or asset.thumbnail_key,
        )
    return sorted(best.values(), key=lambda r: (-(r.score or 0.0), r.asset_id))


def search(request: SearchRequest, settings: Settings | None = None) -> list[SearchResult]:
    """Return one page of assets, best first, each with its best-matching segment."""
    settings = settings or get_settings()
    validate(request)
    index = get_live_index(settings)
    with read_session(settings) as session:
        index.catch_up(session)
        query = _query_vector(request, session, settings)
        wanted = request.offset + request.limit
        k = max(_MIN_K, wanted * settings.index.oversample)
        while True:
            scores, ids = index.search(query, k)
            valid = ids[0] >= 0
            seg_scores, seg_ids = scores[0][valid], ids[0][valid]
            if request.min_score is not None:
                keep = seg_scores >= request.min_score
                seg_scores, seg_ids = seg_scores[keep], seg_ids[keep]
            results = _group(
                seg_scores, seg_ids, _hydrate(session, seg_ids.tolist(), request.filters), request.asset_id
            )
            exhausted = k >= len(index) or (request.min_score is not None and len(seg_ids) < int(valid.sum()))
            if len(results) >= wanted or exhausted:
                return results[request.offset : wanted]
            k *= 4
