"""Rebuild the index snapshot from stored vectors, or re-encode every asset with the configured model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select

from core.blobs import BlobStore
from core.db.engine import read_session, write_session
from core.db.models import Asset, AssetPass, Segment, TextEntry
from core.settings import Settings, get_settings
from index.encoders import get_encoder
from index.ingest.discover import Candidate
from index.ingest.embed import embed_assets
from index.ingest.prepare import PrepareContext, preparer_for
from index.ingest.writer import add_text_entries, log_changes, segment_rows
from index.library import set_model
from index.service import forget_live_indexes, snapshot_path
from index.vector.live import LiveIndex


@dataclass
class ReindexSummary:
    """What a reindex did."""

    vectors: int
    reembedded: int = 0
    failed: int = 0
    ocr_assets: int = 0
    ocr_lines: int = 0


REPROCESS_PASSES = ("scenes", "ocr")


def rebuild_snapshot(settings: Settings | None = None) -> int:
    """Rebuild the index from the database's vectors, write the snapshot, and return its size."""
    settings = settings or get_settings()
    encoder = get_encoder(settings.encoder)
    index = LiveIndex(encoder.model_id, encoder.dim, snapshot_path(settings))
    with read_session(settings) as session:
        index.rebuild(session)
    index.save()
    forget_live_indexes()
    return len(index)


def _source_path(asset: Asset, blobs: BlobStore) -> Path:
    if asset.blob_key:
        return blobs.path(asset.blob_key)
    return Path(asset.uri or "")


def reembed(
    settings: Settings | None = None,
    on_asset: Callable[[str, str | None], None] | None = None,
    kinds: tuple[str, ...] | None = None,
) -> ReindexSummary:
    """Re-encode every indexed asset (of ``kinds`` if given) with the configured model, then rebuild the snapshot."""
    settings = settings or get_settings()
    encoder = get_encoder(settings.encoder)
    blobs = BlobStore(settings.resolved_data_dir())
    ctx = PrepareContext(settings, encoder, blobs)
    with write_session(settings) as session:
        set_model(session, encoder.model_id)
    statement = select(Asset.id).where(Asset.status == "indexed").order_by(Asset.id)
    if kinds is not None:
        statement = statement.where(Asset.kind.in_(kinds))
    with read_session(settings) as session:
        asset_ids = session.execute(statement).scalars().all()
    done = failed = 0
    for asset_id in asset_ids:
        error = _reembed_asset(settings, ctx, blobs, asset_id)
        if error is None:
            done += 1
        else:
            failed += 1
        if on_asset:
            on_asset(asset_id, error)
    return ReindexSummary(vectors=rebuild_snapshot(settings), reembedded=done, failed=failed)


def _reembed_asset(settings: Settings, ctx: PrepareContext, blobs: BlobStore, asset_id: str) -> str | None:
    with read_session(settings) as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            return None
        candidate = Candidate(_source_path(asset, blobs), asset.kind, asset.name, tags=asset.tags)
        sha256, size = asset.sha256, asset.bytes
    try:
        prepared = preparer_for(candidate.kind)(candidate, sha256, size, ctx)
    except (ValueError, OSError) as exc:
        return str(exc)
    embed_assets(ctx.encoder, [prepared])
    with write_session(settings) as session:
        old_ids = list(session.execute(select(Segment.id).where(Segment.asset_id == asset_id)).scalars())
        session.execute(delete(Segment).where(Segment.asset_id == asset_id))
        session.execute(delete(TextEntry).where(TextEntry.asset_id == asset_id))
        session.execute(delete(AssetPass).where(AssetPass.asset_id == asset_id))  # its OCR lines went too
        new = segment_rows(prepared, ctx.encoder.model_id)
        for segment in new:
            segment.asset_id = asset_id
        session.add_all(new)
        session.flush()
        asset = session.get(Asset, asset_id)
        if asset is not None:
            add_text_entries(session, asset, new, asset.tags)
        log_changes(session, old_ids, "delete")
        log_changes(session, [s.id for s in new], "add")
    return None


def reprocess(
    passes: list[str],
    settings: Settings | None = None,
    on_asset: Callable[[str, str | None], None] | None = None,
) -> ReindexSummary:
    """Run media passes again over indexed assets: ``scenes`` re-cuts videos, ``ocr`` re-reads every picture.

    This backfills assets indexed before a pass existed or changed; each pass resumes if interrupted.
    """
    from index.ocr_pass import PASS_NAME, run_ocr_pass

    unknown = sorted(set(passes) - set(REPROCESS_PASSES))
    if unknown:
        raise ValueError(f"unknown pass {', '.join(unknown)}: choose from {', '.join(REPROCESS_PASSES)}")
    settings = settings or get_settings()
    summary = ReindexSummary(vectors=0)
    if "scenes" in passes:
        summary = reembed(settings, on_asset, kinds=("video",))
    if "ocr" in passes:
        with write_session(settings) as session:
            session.execute(delete(AssetPass).where(AssetPass.name == PASS_NAME))
    if "ocr" in passes or ("scenes" in passes and settings.ocr.enabled):
        ocr = run_ocr_pass(settings, on_asset=on_asset)
        summary.ocr_assets, summary.ocr_lines = ocr.assets, ocr.lines
        summary.failed += ocr.failed
        summary.vectors = rebuild_snapshot(settings)
    return summary
