"""Write embedded assets: fill in each claimed asset, its segments with vectors and change-log entries, in one
transaction per batch."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from core.db.engine import lock_change_log, write_session
from core.db.models import Asset, ChangeLog, Segment, TextEntry
from core.settings import Settings
from index.duplicates.store import add_hashes
from index.fulltext import TEXT_SEGMENT_KINDS, entries_for
from index.ingest.prepared import Failure, Outcome, PreparedAsset
from index.library import claim_model


def _fill(asset: Asset, prepared: PreparedAsset) -> None:
    candidate = prepared.candidate
    meta = dict(asset.meta or {})
    meta.update(candidate.metadata)
    meta.update(prepared.meta)
    asset.kind = candidate.kind
    asset.mime = prepared.mime
    asset.bytes = prepared.size
    asset.width, asset.height, asset.duration = prepared.width, prepared.height, prepared.duration
    asset.meta = meta
    asset.thumbnail_key = prepared.thumbnail_key
    asset.status, asset.error, asset.claimed_by = "indexed", None, None


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
            meta=seg.meta,
        )
        for seg in prepared.segments
    ]


def log_changes(session: Session, segment_ids: list[int], op: str) -> None:
    """Append change-log entries, holding the change-log lock until the transaction ends."""
    if segment_ids:
        lock_change_log(session)
        session.add_all([ChangeLog(segment_id=sid, op=op) for sid in segment_ids])


def _record_failures(session: Session, failures: list[Failure]) -> None:
    for failure in failures:
        asset = session.get(Asset, failure.asset_id) if failure.asset_id else None
        if asset is not None and asset.status == "pending":
            asset.status, asset.error, asset.claimed_by = "failed", failure.reason, None


def add_text_entries(session: Session, asset: Asset, segments: list[Segment], tags: list[str]) -> None:
    """Add the full-text rows of an asset whose segments already have ids."""
    transcripts = [(s.id, s.text) for s in segments if s.kind in TEXT_SEGMENT_KINDS and s.text]
    session.add_all(entries_for(asset.id, asset.name, tags, transcripts))


def _write(session: Session, batch: list[PreparedAsset], failures: list[Failure], model_id: str) -> list[Outcome]:
    claim_model(session, model_id)
    outcomes = []
    written: list[tuple[Asset, list[Segment]]] = []
    for prepared in batch:
        path = str(prepared.candidate.path)
        asset = session.get(Asset, prepared.asset_id) if prepared.asset_id else None
        if asset is None or asset.status != "pending" or asset.trashed_at is not None:
            # Deleted meanwhile, or a process that took over a claim it thought abandoned finished first.
            outcomes.append(Outcome(path, "skipped", asset.id if asset else None, "indexed by another ingest"))
            continue
        _fill(asset, prepared)
        add_hashes(session, asset, prepared)
        segments = segment_rows(prepared, model_id)
        asset.segments = segments
        written.append((asset, segments))
        outcomes.append(Outcome(path, "indexed", asset.id, media_seconds=prepared.media_seconds))
    _record_failures(session, failures)
    session.flush()
    for asset, segments in written:
        session.execute(delete(TextEntry).where(TextEntry.asset_id == asset.id))
        add_text_entries(session, asset, segments, asset.tags)
    log_changes(session, [segment.id for _, segments in written for segment in segments], "add")
    return outcomes


def write_batch(
    settings: Settings, batch: list[PreparedAsset], failures: list[Failure], model_id: str
) -> list[Outcome]:
    """Write a batch of claimed assets and record the failed ones, in one transaction."""
    with write_session(settings) as session:
        return _write(session, batch, failures, model_id)
