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
from index.encoders.queries import get_query_encoder
from index.fulltext import TEXT_SEGMENT_KINDS, text_hits
from index.fusion import fuse, only_visual_matches, rank_scores
from index.ingest.images import decode_slot, encoder_ready, open_image
from index.service import get_live_index
from index.vector.live import vectors_from_bytes

_S = TypeVar("_S", Select[Segment, Asset], Select[Asset])
_ID_CHUNK = 900  # below SQLite's bound-parameter limits on old builds
_MIN_K = 64


class SearchError(ValueError):
    """The search request itself is invalid (no query, unknown asset, unreadable image)."""


class UnknownAsset(SearchError):
    """Query by example named an asset that does not exist."""


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
    micro_batch: bool = False  # encode a text query together with concurrent ones (serve's request threads)


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
        """Return the public result shape; ``url_for(asset_id, 'content'|'thumbnail'|...)`` fills URLs on the API.

        The segment's own ``thumbnail_url`` shows the matched moment; audio and video ``content_url`` ends in
        ``#t=start,end`` (a media fragment players seek to).
        """
        has_thumbnail = url_for is not None and self.thumbnail_key is not None
        segment = asdict(self.segment)
        segment["thumbnail_url"] = (
            url_for(self.asset_id, f"segments/{self.segment.id}/thumbnail") if url_for and has_thumbnail else None
        )
        content_url = url_for(self.asset_id, "content") if url_for else None
        if content_url and self.kind in ("audio", "video") and self.segment.t_start is not None:
            content_url += f"#t={self.segment.t_start:g},{(self.segment.t_end or self.segment.t_start):g}"
        return {
            "asset_id": self.asset_id,
            "name": self.name,
            "uri": self.uri,
            "kind": self.kind,
            "collections": self.collections,
            "tags": self.tags,
            "score": self.score,
            "fused_score": self.fused_score,
            "segment": segment,
            "thumbnail_url": url_for(self.asset_id, "thumbnail") if url_for and has_thumbnail else None,
            "content_url": content_url,
        }


MODES = ("vector", "text", "hybrid")
# Which segments each kind of query is compared with: spectrograms serve audio-to-audio similarity only.
# Text-derived segments (transcripts, OCR) are ranked in a list of their own (index/fusion.py).
_TEXT_QUERY_SEGMENTS = ("image", "frame")
_IMAGE_QUERY_SEGMENTS = ("image", "frame")
_AUDIO_QUERY_SEGMENTS = ("spectrogram",)


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
        query = get_query_encoder(settings.encoder).encode(request.text, batched=request.micro_batch)
        return query, _TEXT_QUERY_SEGMENTS
    if request.image is not None:
        try:
            limits = settings.ingest
            with decode_slot(limits.max_concurrent_decodes):
                image, _ = open_image(
                    request.image, limits.max_image_pixels, max_decoded_bytes=limits.max_decoded_bytes
                )
        except ValueError as exc:
            raise SearchError(f"query image unusable: {exc}") from None
        return encoder.encode_images([encoder_ready(image)]), _IMAGE_QUERY_SEGMENTS
    if request.audio is not None:
        return _audio_vector(request.audio, settings), _AUDIO_QUERY_SEGMENTS
    return _asset_vector(session, request.asset_id or "", encoder.model_id, encoder.dim)


def _asset_vector(session: Session, asset_id: str, model_id: str, dim: int) -> tuple[np.ndarray, tuple[str, ...]]:
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise UnknownAsset(f"no asset with id {asset_id!r}")
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


def _vector_results(
    request: SearchRequest,
    session: Session,
    settings: Settings,
    wanted: int,
    query: tuple[np.ndarray, tuple[str, ...]],
) -> list[SearchResult]:
    """Return up to ``wanted`` assets by their best vector match, widening the FAISS search as filters demand."""
    index = get_live_index(settings)
    vector, segment_kinds = query
    k = max(_MIN_K, wanted * settings.index.oversample)
    while True:
        scores, ids = index.search(vector, k)
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


def _derived_results(
    request: SearchRequest, session: Session, settings: Settings, wanted: int, vector: np.ndarray
) -> list[SearchResult]:
    """Return assets ranked by a text query's cosine with their transcript and OCR lines; ``score`` stays None.

    One FAISS search, not widened: text-derived segments are a ranking signal, not the result set.
    """
    index = get_live_index(settings)
    scores, ids = index.search(vector, max(_MIN_K, 4 * wanted * settings.index.oversample))
    valid = ids[0] >= 0
    rows = _hydrate(session, ids[0][valid].tolist(), request.filters, TEXT_SEGMENT_KINDS)
    results = _group(scores[0][valid], ids[0][valid], rows, None)[:wanted]
    for result in results:
        result.score = None
    return results


def _text_results(
    session: Session, text: str, filters: SearchFilters, wanted: int
) -> tuple[list[SearchResult], frozenset[str]]:
    """Return up to ``wanted`` assets ranked by full-text matches, each with the segment that matched, and the
    ids of those whose text holds the whole query phrase."""
    hits = text_hits(session, text, limit=wanted * 4)
    first_hit: dict[str, int | None] = {}
    exact: set[str] = set()
    for asset_id, segment_id, phrase in hits:
        first_hit.setdefault(asset_id, segment_id)
        if phrase:
            exact.add(asset_id)
    if not first_hit:
        return [], frozenset()
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
    return results, frozenset(exact)


def search(request: SearchRequest, settings: Settings | None = None) -> list[SearchResult]:
    """Return one page of assets, best first, each with its best-matching segment (and moment)."""
    settings = settings or get_settings()
    validate(request)
    wanted = request.offset + request.limit
    mode = request.mode if request.text is not None else "vector"  # query by example is always vector
    with read_session(settings) as session:
        # Refuse what needs no model before loading it: full-text search never loads it at all.
        if request.asset_id is not None and session.get(Asset, request.asset_id) is None:
            raise UnknownAsset(f"no asset with id {request.asset_id!r}")
        if mode == "text":
            matches, _ = _text_results(session, request.text or "", request.filters, wanted)
            return rank_scores(matches)[request.offset : wanted]
        get_live_index(settings).catch_up(session)
        query = _query_vector(request, session, settings)
        if request.text is None:
            return _vector_results(request, session, settings, wanted, query)[request.offset : wanted]
        pool = max(wanted * 2, 50)
        visual = _vector_results(request, session, settings, pool, query)
        lists = [_derived_results(request, session, settings, pool, query[0])]
        exact: frozenset[str] = frozenset()
        if mode == "hybrid":
            matches, exact = _text_results(session, request.text, request.filters, pool)
            lists.append(matches)
        if request.min_score is not None:
            lists = [only_visual_matches(results, visual) for results in lists]
        return fuse(visual, *lists, exact=exact)[request.offset : wanted]


def library_is_empty(settings: Settings | None = None) -> bool:
    """Return whether the library holds no asset at all (search then hints to ingest)."""
    with read_session(settings or get_settings()) as session:
        return session.execute(select(Asset.id).limit(1)).first() is None
