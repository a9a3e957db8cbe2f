"""The OCR pass: after embedding, read the text in each image and each scene's picture into ``ocr`` segments.

It runs per asset and records itself in ``asset_passes``, so an interrupted pass resumes with the assets it
has not finished, and ingest itself stays as fast as before. Each line becomes a segment: its words are
full-text indexed and embedded with the text tower; its box and confidence are kept in the segment's metadata.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.blobs import BlobStore
from core.db.engine import read_session, write_session
from core.db.models import Asset, AssetPass, Segment, TextEntry
from core.metrics import observe_ocr
from core.settings import Settings, get_settings
from index.encoders import Encoder, get_encoder
from index.ingest.images import open_image
from index.ingest.writer import log_changes
from index.ocr import OcrLine, get_ocr_engine

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

PASS_NAME = "ocr"
_KINDS = ("image", "video")
# Repeated pictures are told apart on a 160x90 grey thumbnail, cell by cell (10 x 10 cells): a slide that differs
# from the one before by a single line of text differs a lot in one cell, and little on average.
_THUMB = (160, 90)
_CELLS = 10


@dataclass
class OcrSummary:
    """What an OCR pass did: assets finished, pictures read (and skipped as repeats), lines found, time spent."""

    assets: int = 0
    pictures: int = 0
    repeated: int = 0
    lines: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds_per_picture(self) -> float | None:
        """Return the mean OCR time of one picture read (None before any)."""
        return self.seconds / self.pictures if self.pictures else None


@dataclass
class _Picture:
    """One picture of an asset to read: the whole image, or a video scene's frame with that scene's span."""

    image: Image.Image
    t_start: float | None = None
    t_end: float | None = None
    thumbnail_key: str | None = None


def pending_assets(session: Session, asset_ids: Iterable[str] | None = None) -> list[str]:
    """Return the indexed image and video assets the OCR pass has not finished (of ``asset_ids`` if given)."""
    done = select(AssetPass.asset_id).where(AssetPass.asset_id == Asset.id, AssetPass.name == PASS_NAME).exists()
    statement = select(Asset.id).where(Asset.status == "indexed", Asset.kind.in_(_KINDS), ~done).order_by(Asset.id)
    if asset_ids is None:
        return list(session.execute(statement).scalars())
    wanted = list(dict.fromkeys(asset_ids))
    found: list[str] = []
    for start in range(0, len(wanted), 900):
        found.extend(session.execute(statement.where(Asset.id.in_(wanted[start : start + 900]))).scalars())
    return sorted(found)


def run_ocr_pass(
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    asset_ids: Iterable[str] | None = None,
    on_asset: Callable[[str, str | None], None] | None = None,
) -> OcrSummary:
    """Read the text of every pending asset (or of ``asset_ids``) and store it; return what was done."""
    settings = settings or get_settings()
    summary = OcrSummary()
    with read_session(settings) as session:
        pending = pending_assets(session, asset_ids)
    if not pending:
        return summary
    if asset_ids is None:
        # Ingest workers that finish at once all run the pass; in different orders they rarely read the same picture.
        random.shuffle(pending)
    encoder = encoder or get_encoder(settings.encoder)
    blobs = BlobStore(settings.resolved_data_dir())
    for asset_id in pending:
        try:
            _read_asset(settings, encoder, blobs, asset_id, summary)
            error = None
            summary.assets += 1
        except (ValueError, OSError) as exc:  # an offline or unreadable file: retried by the next pass
            error = str(exc) or type(exc).__name__
            summary.failed += 1
            summary.errors.append((asset_id, error))
            log.warning("OCR of asset %s failed: %s", asset_id, error)
        if on_asset:
            on_asset(asset_id, error)
    return summary


def _read_asset(settings: Settings, encoder: Encoder, blobs: BlobStore, asset_id: str, summary: OcrSummary) -> None:
    with read_session(settings) as session:
        asset = session.get(Asset, asset_id)
        if asset is None:
            return
        pictures = _pictures(session, asset, blobs, settings)
    engine = get_ocr_engine(settings.ocr.device)
    found: list[tuple[_Picture, OcrLine]] = []
    previous: tuple[np.ndarray, list[OcrLine]] | None = None
    for picture in pictures:
        thumb = _grey_thumbnail(picture.image)
        if previous is not None and _difference(thumb, previous[0]) < settings.ocr.same_frame_difference:
            lines = previous[1]  # the same slide as the scene before: no detection, no recognition
            summary.repeated += 1
            observe_ocr(None)
        else:
            started = time.perf_counter()
            lines = engine.read(picture.image, settings.ocr.min_confidence)
            spent = time.perf_counter() - started
            summary.pictures += 1
            summary.seconds += spent
            observe_ocr(spent)
        previous = (thumb, lines)
        found.extend((picture, line) for line in lines)
    vectors = encoder.encode_texts([line.text for _, line in found]) if found else np.zeros((0, encoder.dim))
    with write_session(settings) as session:
        _store(session, asset_id, found, vectors, encoder.model_id)
    summary.lines += len(found)


def _pictures(session: Session, asset: Asset, blobs: BlobStore, settings: Settings) -> list[_Picture]:
    """Return the pictures of an asset to read: the image itself, or each scene's frame of a video."""
    path = blobs.path(asset.blob_key) if asset.blob_key else Path(asset.uri or "")
    if asset.kind == "image":
        image, _ = open_image(path, settings.ingest.max_image_pixels)
        return [_Picture(image)]
    from index.media.video import frames_at

    scenes = session.execute(
        select(Segment.t_start, Segment.t_end, Segment.thumbnail_key, Segment.meta)
        .where(Segment.asset_id == asset.id, Segment.kind == "frame")
        .order_by(Segment.t_start)
    ).all()
    times = [float((meta or {}).get("frame_time", t_start or 0.0)) for t_start, _, _, meta in scenes]
    images = dict(frames_at(path, times, settings.media))
    return [
        _Picture(images[t], t_start, t_end, key)
        for t, (t_start, t_end, key, _) in zip(times, scenes, strict=True)
        if t in images
    ]


def _store(
    session: Session, asset_id: str, found: list[tuple[_Picture, OcrLine]], vectors: np.ndarray, model_id: str
) -> None:
    """Replace the asset's OCR segments with ``found`` and mark the pass done, in the caller's transaction."""
    if session.get(AssetPass, (asset_id, PASS_NAME)) is not None:
        return  # another worker finished it meanwhile
    old = list(session.execute(select(Segment.id).where(Segment.asset_id == asset_id, Segment.kind == "ocr")).scalars())
    if old:
        session.execute(delete(TextEntry).where(TextEntry.segment_id.in_(old)))
        session.execute(delete(Segment).where(Segment.id.in_(old)))
    rows = [
        Segment(
            asset_id=asset_id,
            kind="ocr",
            t_start=picture.t_start,
            t_end=picture.t_end,
            text=line.text,
            thumbnail_key=picture.thumbnail_key,
            model_id=model_id,
            vector=np.asarray(vector, dtype=np.float32).tobytes(),
            meta={"box": line.box, "confidence": line.confidence, "raw": line.raw},
        )
        for (picture, line), vector in zip(found, vectors, strict=True)
    ]
    session.add_all(rows)
    session.add(AssetPass(asset_id=asset_id, name=PASS_NAME))
    session.flush()
    session.add_all(
        TextEntry(asset_id=asset_id, segment_id=row.id, body=_body(line))
        for row, (_, line) in zip(rows, found, strict=True)
    )
    log_changes(session, old, "delete")
    log_changes(session, [row.id for row in rows], "add")


def _body(line: OcrLine) -> str:
    """Return the full-text body of a line: its words, plus the raw run-together form when that differs."""
    return line.text if line.raw == line.text else f"{line.text} {line.raw}"


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """Return the largest mean absolute difference (0-255) of two thumbnails over a grid of cells."""
    h, w = a.shape
    cells = np.abs(a - b).reshape(_CELLS, h // _CELLS, _CELLS, w // _CELLS).mean(axis=(1, 3))
    return float(cells.max())


def _grey_thumbnail(image: Image.Image) -> np.ndarray:
    """Return a 160x90 grey thumbnail as float32, to tell a repeated slide from a new one."""
    from PIL import Image

    thumb: np.ndarray = np.asarray(image.convert("L").resize(_THUMB, Image.Resampling.BILINEAR), dtype=np.float32)
    return thumb
