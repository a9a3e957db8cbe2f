"""Decode one file into a PreparedAsset (runs in worker threads); one preparer per media kind."""

from __future__ import annotations

import mimetypes

from index.duplicates.phash import image_hashes
from index.ingest.discover import Candidate
from index.ingest.images import encoder_ready, open_image, thumbnail_jpeg
from index.ingest.prepared import PrepareContext, PreparedAsset, PreparedSegment, Preparer

__all__ = ["PrepareContext", "Preparer", "prepare_image", "preparer_for"]


def prepare_image(candidate: Candidate, sha256: str, size: int, ctx: PrepareContext) -> PreparedAsset:
    """Decode an image into one ``image`` segment with a thumbnail."""
    limits = ctx.settings.ingest
    image, (width, height) = open_image(
        candidate.path, limits.max_image_pixels, max_decoded_bytes=limits.max_decoded_bytes
    )
    thumbs = ctx.settings.thumbnails
    thumbnail_key = ctx.blobs.put_thumbnail(f"{sha256}.jpg", thumbnail_jpeg(image, thumbs.size, thumbs.quality))
    segment = PreparedSegment(
        kind="image", pixels=ctx.encoder.preprocess(encoder_ready(image)), thumbnail_key=thumbnail_key
    )
    return PreparedAsset(
        candidate=candidate,
        sha256=sha256,
        size=size,
        mime=mimetypes.guess_type(candidate.name)[0],
        width=width,
        height=height,
        thumbnail_key=thumbnail_key,
        segments=[segment],
        hashes=[(None, *image_hashes(image).pair)],
    )


def preparer_for(kind: str) -> Preparer:
    """Return the preparer for a media kind (audio and video decoders load on first use)."""
    if kind == "image":
        return prepare_image
    if kind in {"audio", "video"}:
        from index.ingest import media

        return media.prepare_audio if kind == "audio" else media.prepare_video
    raise ValueError(f"no decoder for {kind!r} files")
