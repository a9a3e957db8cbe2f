"""Write embedded assets: asset, tags, segments with vectors and change-log entries in one transaction."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.engine import lock_change_log, write_session
from core.db.models import Asset, AssetTag, ChangeLog, Segment
from core.settings import Settings
from index.duplicates.store import add_hashes
from index.fulltext import entries_for
from index.ingest.prepared import Failure, Outcome, PreparedAsset
from index.library import claim_model


def _asset_row(prepared: PreparedAsset) -> Asset:
    candidate = prepared.candidate
    meta = dict(candidate.metadata)
    meta.update(prepared.meta)
    asset = Asset(
        id=prepared.asset_id,
        sha256=prepared.sha256,
        kind=candidate.kind,
        source=candidate.source,
        name=candidate.name,
        uri=None if candidate.blob_key else str(candidate.path),
        blob_key=candidate.blob_key,
        mime=prepared.mime,
        bytes=prepared.size,
        width=prepared.width,
        height=prepared.height,
        duration=prepared.duration,
        collection=candidate.collection,
        meta=meta,
        status="indexed",
        thumbnail_key=prepared.thumbnail_key,
    )
    asset.tag_rows = [AssetTag(tag=tag) for tag in sorted(set(candidate.tags))]
    return asset


def segment_rows(prepared: PreparedAsset, model_id: str) -> list[Segment]:
    """Return Segment rows (vectors included) for an embedded asset, not yet attached to one."""
    return [
        Segment(
            kind=seg.kind,
            t_start=seg.t_start,
            t_end=seg.t_end,
            text=seg.text,
            thumbnail_key=seg.thumbnail_key,
            model_id=model_id,
            vector=seg.vector.astype("float32").tobytes() if seg.vector is not None else b"",
        )
        for seg in prepared.segments
    ]


def add_asset(session: Session, asset: Asset, prepared: PreparedAsset, model_id: str) -> list[Segment]:
    """Add an asset row and its segments; the caller logs the change and commits."""
    session.add(asset)
    add_hashes(session, asset, prepared)
    segments = segment_rows(prepared, model_id)
    asset.segments = segments
    return segments


def log_changes(session: Session, segment_ids: list[int], op: str) -> None:
    """Append change-log entries, holding the change-log lock until the transaction ends."""
    if segment_ids:
        lock_change_log(session)
        session.add_all([ChangeLog(segment_id=sid, op=op) for sid in segment_ids])


def _clear_failed(session: Session, prepared: PreparedAsset) -> None:
    session.execute(
        delete(Asset).where(
            Asset.collection == prepared.candidate.collection,
            Asset.sha256 == prepared.sha256,
            Asset.status == "failed",
        )
    )


def _record_failures(session: Session, failures: list[Failure]) -> None:
    for failure in failures:
        if failure.sha256 is None:
            continue
        exists = session.execute(
            select(Asset.id).where(Asset.collection == failure.candidate.collection, Asset.sha256 == failure.sha256)
        ).first()
        if exists is None:
            session.add(
                Asset(
                    sha256=failure.sha256,
                    kind=failure.candidate.kind,
                    name=failure.candidate.name,
                    uri=str(failure.candidate.path),
                    bytes=failure.size,
                    collection=failure.candidate.collection,
                    meta=dict(failure.candidate.metadata),
                    status="failed",
                    error=failure.reason,
                )
            )


def add_text_entries(session: Session, asset: Asset, segments: list[Segment], tags: list[str]) -> None:
    """Add the full-text rows of an asset whose segments already have ids."""
    transcripts = [(s.id, s.text) for s in segments if s.kind == "transcript" and s.text]
    session.add_all(entries_for(asset.id, asset.name, tags, transcripts))


def _write(session: Session, batch: list[PreparedAsset], failures: list[Failure], model_id: str) -> list[Outcome]:
    claim_model(session, model_id)
    outcomes = []
    written: list[tuple[Asset, list[Segment], list[str]]] = []
    for prepared in batch:
        _clear_failed(session, prepared)
        asset = _asset_row(prepared)
        written.append((asset, add_asset(session, asset, prepared, model_id), prepared.candidate.tags))
        outcomes.append(
            Outcome(str(prepared.candidate.path), "indexed", asset.id, media_seconds=prepared.media_seconds)
        )
    _record_failures(session, failures)
    session.flush()
    for asset, segments, tags in written:
        add_text_entries(session, asset, segments, tags)
    log_changes(session, [segment.id for _, segments, _ in written for segment in segments], "add")
    return outcomes


def write_batch(
    settings: Settings, batch: list[PreparedAsset], failures: list[Failure], model_id: str
) -> list[Outcome]:
    """Write a batch in one transaction; on a concurrent duplicate, fall back to one asset at a time."""
    return _write_batch(settings, batch, failures, model_id)


def _write_batch(
    settings: Settings, batch: list[PreparedAsset], failures: list[Failure], model_id: str
) -> list[Outcome]:
    try:
        with write_session(settings) as session:
            return _write(session, batch, failures, model_id)
    except IntegrityError:
        if len(batch) == 1 and not failures:
            path = str(batch[0].candidate.path)
            return [Outcome(path, "skipped", reason="already indexed (by a concurrent ingest)")]
    outcomes = [outcome for prepared in batch for outcome in _write_batch(settings, [prepared], [], model_id)]
    for failure in failures:
        try:
            with write_session(settings) as session:
                _record_failures(session, [failure])
        except IntegrityError:
            pass  # another process recorded the same file meanwhile
    return outcomes
