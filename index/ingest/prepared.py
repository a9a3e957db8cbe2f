"""What decoding produces before encoding and writing: assets, their segments, per-file outcomes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from index.ingest.discover import Candidate

if TYPE_CHECKING:
    from core.blobs import BlobStore
    from core.settings import Settings
    from index.encoders.base import Encoder


@dataclass
class PreparedSegment:
    """One future segment: pixels for the image tower or text for the text tower."""

    kind: str
    t_start: float | None = None
    t_end: float | None = None
    text: str | None = None
    pixels: Any | None = None
    thumbnail_key: str | None = None
    vector: np.ndarray | None = None
    meta: dict[str, Any] | None = None


@dataclass
class PreparedAsset:
    """A decoded file, ready to be embedded and written."""

    candidate: Candidate
    sha256: str
    size: int
    mime: str | None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    thumbnail_key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    segments: list[PreparedSegment] = field(default_factory=list)
    media_seconds: float = 0.0
    asset_id: str | None = None  # the pending asset this ingest claimed for the content
    # Perceptual hashes (t_start or None, pHash, dHash) of the image or of each scene frame; near-duplicates use them.
    hashes: list[tuple[float | None, int, int]] = field(default_factory=list)
    variant_of: tuple[str, int] | None = None  # (best asset id, distance) when ingested as a near copy's variant


@dataclass
class Outcome:
    """What happened to one input: indexed, skipped (already there) or failed, with the reason."""

    path: str
    status: str
    asset_id: str | None = None
    reason: str | None = None
    media_seconds: float = 0.0


@dataclass
class Failure:
    """A file that could not be ingested; kept with its hash when known so the error is recorded."""

    candidate: Candidate
    reason: str
    sha256: str | None = None
    size: int = 0
    asset_id: str | None = None  # the claimed asset, marked failed with the reason


@dataclass
class PrepareContext:
    """What every preparer needs: settings, the encoder's preprocessing, the blob store."""

    settings: Settings
    encoder: Encoder
    blobs: BlobStore


Preparer = Callable[[Candidate, str, int, PrepareContext], PreparedAsset]
