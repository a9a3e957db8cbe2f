"""Open an asset's content for serving: open first, then check the open descriptor, then read only from it.

A path referenced in place is served only while the file open at that path is the one recorded at ingest or at
the last scan (a regular file with the same device, inode, size and mtime_ns). Checking a path and then opening
it would leave a window for a symlink swap; the descriptor that was checked is the one streamed. A mismatch is
logged, the location is flagged for the next scan, and the caller gets ContentUnavailable. Nothing is hashed here.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.blobs import BlobStore, open_no_follow
from core.db.engine import read_session, write_session
from core.db.models import AssetLocation
from core.settings import Settings
from index.ingest.claims import stat_fields
from index.moments import MomentNotFound, moment_thumbnail_key
from index.resolve import resolve_asset

log = logging.getLogger(__name__)


class ContentUnavailable(LookupError):
    """The asset has no location whose file can be served as it was indexed."""


class AssetMissing(ContentUnavailable):
    """No live asset has this id."""


@dataclass
class OpenContent:
    """An open, checked file and what to tell the client about it; the caller closes ``handle``."""

    handle: BinaryIO
    size: int
    name: str
    mime: str | None
    sha256: str


def _open_checked(path: Path, expected: dict[str, int | None]) -> tuple[BinaryIO, int] | str:
    """Return the open file and its size, or why it does not match what was recorded."""
    try:
        fd = open_no_follow(path)
    except OSError as exc:
        return f"cannot open: {exc.strerror or exc}"
    handle = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        return "not a regular file"
    actual = stat_fields(info)
    if any(expected[name] is None or expected[name] != actual[name] for name in actual):
        handle.close()
        changed = ", ".join(name for name in actual if expected[name] != actual[name])
        return f"differs from the recorded file ({changed})"
    return handle, info.st_size


def _flag(settings: Settings, location_id: int) -> None:
    with write_session(settings) as session:
        location = session.get(AssetLocation, location_id)
        if location is not None:
            location.needs_scan = True


def open_content(settings: Settings, asset_id: str) -> OpenContent:
    """Open the content of an asset (or of an id merged into it); raise ContentUnavailable when none can be."""
    blobs = BlobStore(settings.resolved_data_dir())
    with read_session(settings) as session:
        asset = resolve_asset(session, asset_id)
        if asset is None or asset.trashed_at is not None:
            raise AssetMissing(f"no asset with id {asset_id!r}")
        name, mime, sha256, size = asset.name, asset.mime, asset.sha256, asset.bytes
        # Blobs first (the data dir is ours), then paths in place, oldest first.
        candidates: list[tuple[int, Path, dict[str, int | None] | None]] = [
            (loc.id, blobs.path(loc.blob_key), None) for loc in asset.locations if loc.blob_key
        ]
        candidates += [(loc.id, Path(loc.path), _recorded(loc)) for loc in asset.live_locations if loc.path]
    for location_id, path, expected in candidates:
        opened = _open_blob(path, size) if expected is None else _open_checked(path, expected)
        if isinstance(opened, str):
            log.warning("not serving asset %s from location %s: %s", asset_id, location_id, opened)
            _flag(settings, location_id)
            continue
        handle, actual_size = opened
        return OpenContent(handle, actual_size, name, mime, sha256)
    raise ContentUnavailable("the asset's content is not available")


def _recorded(location: AssetLocation) -> dict[str, int | None]:
    return {
        "size": location.size,
        "mtime_ns": location.mtime_ns,
        "inode": location.inode,
        "device": location.device,
    }


def _open_blob(path: Path, size: int) -> tuple[BinaryIO, int] | str:
    """Open a blob-store file: a regular file (never a symlink) of the content's size."""
    try:
        fd = open_no_follow(path)
    except OSError as exc:
        return f"cannot open: {exc.strerror or exc}"
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size != size:
        os.close(fd)
        return "blob is not the stored content"
    return os.fdopen(fd, "rb"), info.st_size


def open_thumbnail(settings: Settings, asset_id: str) -> OpenContent:
    """Open an asset's thumbnail from the blob store; raise ContentUnavailable when it has none."""
    with read_session(settings) as session:
        asset = resolve_asset(session, asset_id)
        if asset is None or asset.trashed_at is not None:
            raise AssetMissing(f"no asset with id {asset_id!r}")
        key, name = asset.thumbnail_key, f"{Path(asset.name).stem}.jpg"
    return _open_jpeg(settings, key, name, "this asset has no thumbnail")


def open_moment_thumbnail(settings: Settings, asset_id: str, segment_id: int) -> OpenContent:
    """Open the picture of one segment of an asset (its scene's frame, else the asset's thumbnail)."""
    with read_session(settings) as session:
        asset = resolve_asset(session, asset_id)
        if asset is None or asset.trashed_at is not None:
            raise AssetMissing(f"no asset with id {asset_id!r}")
        try:
            key = moment_thumbnail_key(session, asset.id, segment_id)
        except MomentNotFound as exc:
            raise AssetMissing(str(exc)) from None
        name = f"{Path(asset.name).stem}-{segment_id}.jpg"
    return _open_jpeg(settings, key, name, "this moment has no thumbnail")


def _open_jpeg(settings: Settings, key: str | None, name: str, none_message: str) -> OpenContent:
    if not key:
        raise ContentUnavailable(none_message)
    try:
        fd = open_no_follow(BlobStore(settings.resolved_data_dir()).path(key))
    except (OSError, ValueError):
        raise ContentUnavailable("the thumbnail file is missing") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ContentUnavailable("the thumbnail file is missing")
    return OpenContent(os.fdopen(fd, "rb"), info.st_size, name, "image/jpeg", key)
