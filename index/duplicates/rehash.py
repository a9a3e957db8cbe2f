"""Fill in perceptual hashes for images and videos indexed before near-duplicate detection existed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from core.blobs import BlobStore
from core.db.engine import read_session, write_session
from core.db.hash_models import PerceptualHash
from core.db.models import Asset
from core.settings import Settings, get_settings
from index.duplicates.phash import image_hashes
from index.duplicates.store import LIVE
from index.ingest.images import open_image


@dataclass
class RehashSummary:
    """How many assets got hashes and how many could not be read."""

    hashed: int = 0
    failed: int = 0


def _hashes_of(kind: str, path: Path, settings: Settings) -> list[tuple[float | None, int, int]]:
    if kind == "image":
        image, _ = open_image(path, settings.ingest.max_image_pixels)
        return [(None, *image_hashes(image).pair)]
    from index.media.video import iter_scenes

    return [(round(scene.t_start, 3), *image_hashes(scene.frame).pair) for scene in iter_scenes(path, settings.media)]


def rehash(settings: Settings | None = None, on_failure: Callable[[str, str], None] | None = None) -> RehashSummary:
    """Hash every indexed image and video that has no hashes yet; a file that fails is reported and skipped."""
    settings = settings or get_settings()
    blobs = BlobStore(settings.resolved_data_dir())
    with read_session(settings) as session:
        todo = [
            (asset.id, asset.kind, Path(asset.uri) if asset.uri else blobs.path(asset.blob_key or ""))
            for asset in session.execute(
                select(Asset).where(
                    *LIVE,
                    Asset.kind.in_(["image", "video"]),
                    ~select(PerceptualHash.id).where(PerceptualHash.asset_id == Asset.id).exists(),
                )
            ).scalars()
        ]
    summary = RehashSummary()
    for asset_id, kind, path in todo:
        try:
            hashes = _hashes_of(kind, path, settings)
        except (ValueError, OSError) as exc:
            summary.failed += 1
            if on_failure is not None:
                on_failure(asset_id, str(exc) or type(exc).__name__)
            continue
        with write_session(settings) as session:
            session.add_all(PerceptualHash(asset_id=asset_id, t_start=t, phash=p, dhash=d) for t, p, d in hashes)
        summary.hashed += 1
    return summary
