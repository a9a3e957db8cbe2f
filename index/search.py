"""Search: a query vector -> FAISS top-k with oversampling -> filters -> best segment per asset -> page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, defer, lazyload

from core.db.engine import read_session
from core.db.hash_models import AssetVariant
from core.db.models import Asset, AssetCollection, AssetTag, Segment
from core.settings import Settings, get_settings
from index.encoders import get_encoder
from index.fulltext import text_hits
from index.ingest.images import encoder_ready, open_image
from index.service import get_live_index
from index.vector.live import vectors_from_bytes

_S = TypeVar("_S", Select[Segment, Asset], Select[Asset])
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
    include_variants: bool = False  # near copies ingested with --near-duplicates link are hidden unless asked for


@dataclass
class SearchRequest:
    """Exactly one of text, image, asset_id (more like this) or vector, plus filters and paging."""

    text: str | None = None
    image: Path | bytes | None = None
    asset_id: str | None = None
    vector: np.ndarray | None = None
    audio: Path | bytes | None = None
    filters: SearchFilters = field(default_factory=SearchFilters)
    min_score: float | None = None
    limit: int = 10
    offset: int = 0
    mode: str = "hybrid"


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
    collections: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def to_dict(self, url_for: Callable[[str, str], str | None] | None = None) -> dict[str, Any]:
        """Return the public result shape; ``url_for(asset_id, 'content'|'thumbnail')`` fills URLs on the API."""
        return {
            "asset_id": self.asset_id,
            "name": self.name,
            "uri": self.uri,
            "kind": self.kind,
            "collections": self.collections,
            "tags": self.tags,
            "score": self.score,
            "fused_score": self.fused_score,
            "segment": asdict(self.segment),
            "thumbnail_url": url_for(self.asset_id, "thumbnail") if url_for else None,
            "content_url": url_for(self.asset_id, "content") if url_for else None,
        }


MODES = ("vector", "text", "hybrid")
# Which segments each kind of query is compared with: spectrograms serve audio-to-audio similarity only.
_TEXT_QUERY_SEGMENTS = ("image", "frame", "transcript")
_IMAGE_QUERY_SEGMENTS = ("image", "frame")
_AUDIO_QUERY_SEGMENTS = ("spectrogram",)
_RRF_K = 60


def validate(request: SearchRequest) -> None:
    """Raise SearchError for a request that cannot run."""
    queries = (request.text, request.image, request.audio, request.asset_id, request.vector)
    if sum(q is not None for q in queries) != 1:
        raise SearchError("give exactly one of: text, image, audio, asset_id (more like this)")
    if request.text is not None and not request.text.strip():
        raise SearchError("text query is empty")
    if not 1 <= request.limit <= 1000:
        raise SearchError("limit must be between 1 and 1000")
    if request.offset < 0:
        raise SearchError("offset must be 0 or more")
    if request.min_score is not None and not np.isfinite(request.min_score):
        raise SearchError("min_score must be a finite number")
    if request.mode not in MODES:
        raise SearchError(f"mode must be one of {', '.join(MODES)}")


def _audio_vector(source: Path | bytes, settings: Settings) -> np.ndarray:
    import tempfile

    from index.ingest.media import SAMPLE_RATE
    from index.media.audio import load_audio, spectrogram_windows
    from index.media.errors import MediaError

    with tempfile.NamedTemporaryFile(suffix=".audio") as handle:
        if isinstance(source, bytes):
            handle.write(source)
            handle.flush()
        try:
            audio = load_audio(handle.name if isinstance(source, bytes) else source, settings.media, SAMPLE_RATE)
        except MediaError as exc:
            raise SearchError(f"query audio unusable: {exc}") from None
    images = [encoder_ready(w.image) for w in spectrogram_windows(audio, settings.media, SAMPLE_RATE)]
    return _mean_direction(get_encoder(settings.encoder).encode_images(images))


def _mean_direction(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0, keepdims=True)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _query_vector(request: SearchRequest, session: Session, settings: Settings) -> tuple[np.ndarray, tuple[str, ...]]:
    """Return the query vector and the segment kinds it should be compared with."""
    encoder = get_encoder(settings.encoder)
    if request.vector is not None:
        vector = np.asarray(request.vector, dtype=np.float32).reshape(1, -1)
        return _mean_direction(vector), _TEXT_QUERY_SEGMENTS
    if request.text is not None:
        return encoder.encode_texts([request.text]), _TEXT_QUERY_SEGMENTS
    if request.image is not None:
        try:
            image, _ = open_image(request.image, settings.ingest.max_image_pixels)
        except ValueError as exc:
            raise SearchError(f"query image unusable: {exc}") from None
        return encoder.encode_images([encoder_ready(image)]), _IMAGE_QUERY_SEGMENTS
    if request.audio is not None:
        return _audio_vector(request.audio, settings), _AUDIO_QUERY_SEGMENTS
    return _asset_vector(session, request.asset_id or "", encoder.model_id, encoder.dim)


def _asset_vector(session: Session, asset_id: str, model_id: str, dim: int) -> tuple[np.ndarray, tuple[str, ...]]:
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise SearchError(f"no asset with id {asset_id!r}")
    kinds = _AUDIO_QUERY_SEGMENTS if asset.kind == "audio" else _IMAGE_QUERY_SEGMENTS
    blobs = (
        session.execute(
            select(Segment.vector).where(
                Segment.asset_id == asset_id, Segment.model_id == model_id, Segment.kind.in_(kinds)
            )
        )
        .scalars()
        .all()
    )
    if not blobs:
        raise SearchError(f"asset {asset_id!r} has no indexed vectors to compare with")
    return _mean_direction(vectors_from_bytes(list(blobs), dim)), kinds


# Searchable assets: indexed and not in the trash.
_LIVE = (Asset.status == "indexed", Asset.trashed_at.is_(None))


def _filtered(statement: _S, filters: SearchFilters) -> _S:
    if filters.kinds:
        statement = statement.where(Asset.kind.in_(filters.kinds))
    if filters.collections:
        statement = statement.where(
            select(AssetCollection.asset_id)
            .where(AssetCollection.asset_id == Asset.id, AssetCollection.collection.in_(filters.collections))
            .exists()
        )
    if filters.sources:
        statement = statement.where(Asset.source.in_(filters.sources))
    for tag in filters.tags:
        statement = statement.where(
            select(AssetTag.asset_id).where(AssetTag.asset_id == Asset.id, AssetTag.tag == tag).exists()
        )
    if not filters.include_variants:
        statement = statement.where(~select(AssetVariant.asset_id).where(AssetVariant.asset_id == Asset.id).exists())
    return statement


# Results need no segment's vector (2 KB each, k x oversample of them per search); labels load only for the
# assets that make it into the results.
_WITHOUT_VECTOR = defer(Segment.vector)
_WITHOUT_TAGS = (lazyload(Asset.tag_rows), lazyload(Asset.collection_rows))


def _hydrate(
    session: Session, ids: Sequence[int], filters: SearchFilters, segment_kinds: Sequence[str]
) -> dict[int, tuple[Segment, Asset]]:
    rows: dict[int, tuple[Segment, Asset]] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = list(ids[start : start + _ID_CHUNK])
        statement = _filtered(
            select(Segment, Asset)
            .join(Asset, Segment.asset_id == Asset.id)
            .where(Segment.id.in_(chunk), Segment.kind.in_(segment_kinds), *_LIVE)
            .options(_WITHOUT_VECTOR, *_WITHOUT_TAGS),
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
        best[asset.id] = _result(asset, segment, float(score))
    return sorted(best.values(), key=lambda r: (-(r.score or 0.0), r.asset_id))


def _result(asset: Asset, segment: Segment, score: float | None) -> SearchResult:
    return SearchResult(
        asset_id=asset.id,
        name=asset.name,
        uri=asset.uri or asset.blob_key,
        kind=asset.kind,
        score=score,
        fused_score=None,
        segment=SegmentHit(segment.id, segment.kind, segment.t_start, segment.t_end, segment.text),
        thumbnail_key=segment.thumbnail_key or asset.thumbnail_key,
        collections=asset.collections,
        tags=asset.tags,
    )


def _vector_results(request: SearchRequest, session: Session, settings: Settings, wanted: int) -> list[SearchResult]:
    """Return up to ``wanted`` assets by their best vector match, widening the FAISS search as filters demand."""
    index = get_live_index(settings)
    query, segment_kinds = _query_vector(request, session, settings)
    k = max(_MIN_K, wanted * settings.index.oversample)
    while True:
        scores, ids = index.search(query, k)
        valid = ids[0] >= 0
        seg_scores, seg_ids = scores[0][valid], ids[0][valid]
        if request.min_score is not None:
            keep = seg_scores >= request.min_score
            seg_scores, seg_ids = seg_scores[keep], seg_ids[keep]
        rows = _hydrate(session, seg_ids.tolist(), request.filters, segment_kinds)
        results = _group(seg_scores, seg_ids, rows, request.asset_id)
        exhausted = k >= len(index) or (request.min_score is not None and len(seg_ids) < int(valid.sum()))
        if len(results) >= wanted or exhausted:
            return results[:wanted]
        k *= 4


def _text_results(session: Session, text: str, filters: SearchFilters, wanted: int) -> list[SearchResult]:
    """Return up to ``wanted`` assets ranked by full-text matches, each with the segment that matched."""
    hits = text_hits(session, text, limit=wanted * 4)
    first_hit: dict[str, int | None] = {}
    for asset_id, segment_id in hits:
        first_hit.setdefault(asset_id, segment_id)
    if not first_hit:
        return []
    statement = _filtered(
        select(Asset).where(Asset.id.in_(list(first_hit)), *_LIVE).options(*_WITHOUT_TAGS),
        filters,
    )
    assets: dict[str, Asset] = {asset.id: asset for asset in session.execute(statement).scalars()}
    segment_ids = [sid for aid, sid in first_hit.items() if sid is not None and aid in assets]
    chosen = select(Segment).where(Segment.id.in_(segment_ids)).options(_WITHOUT_VECTOR)
    segments = {seg.id: seg for seg in session.execute(chosen).scalars()}
    results = []
    for asset_id, segment_id in first_hit.items():
        asset = assets.get(asset_id)
        if asset is None:
            continue
        segment = segments.get(segment_id) if segment_id is not None else None
        if segment is None:  # matched by name or tags: show the asset's first segment
            segment = session.execute(
                select(Segment)
                .where(Segment.asset_id == asset_id)
                .order_by(Segment.id)
                .limit(1)
                .options(_WITHOUT_VECTOR)
            ).scalar_one_or_none()
        if segment is not None:
            results.append(_result(asset, segment, None))
        if len(results) >= wanted:
            break
    return results


def _fuse(vector: list[SearchResult], text: list[SearchResult]) -> list[SearchResult]:
    """Reciprocal rank fusion; the score stays the cosine of the best vector match (None if text only)."""
    fused: dict[str, SearchResult] = {}
    for rank, result in enumerate(vector, 1):
        result.fused_score = 1.0 / (_RRF_K + rank)
        fused[result.asset_id] = result
    for rank, result in enumerate(text, 1):
        contribution = 1.0 / (_RRF_K + rank)
        known = fused.get(result.asset_id)
        if known is None:
            result.fused_score = contribution
            fused[result.asset_id] = result
            continue
        known.fused_score = (known.fused_score or 0.0) + contribution
        if result.segment.kind == "transcript":  # the words that matched say more than the nearest vector
            known.segment, known.thumbnail_key = result.segment, result.thumbnail_key
    return sorted(fused.values(), key=lambda r: (-(r.fused_score or 0.0), r.asset_id))


def search(request: SearchRequest, settings: Settings | None = None) -> list[SearchResult]:
    """Return one page of assets, best first, each with its best-matching segment (and moment)."""
    settings = settings or get_settings()
    validate(request)
    index = get_live_index(settings)
    wanted = request.offset + request.limit
    mode = request.mode if request.text is not None else "vector"  # query by example is always vector
    with read_session(settings) as session:
        index.catch_up(session)
        if mode == "vector":
            return _vector_results(request, session, settings, wanted)[request.offset : wanted]
        pool = max(wanted * 2, 50)
        text = _text_results(session, request.text or "", request.filters, pool)
        if mode == "text":
            for rank, result in enumerate(text, 1):
                result.fused_score = 1.0 / (_RRF_K + rank)
            return text[request.offset : wanted]
        vector = _vector_results(request, session, settings, pool)
        if request.min_score is not None:
            text = [r for r in text if r.asset_id in {v.asset_id for v in vector}]
        return _fuse(vector, text)[request.offset : wanted]
