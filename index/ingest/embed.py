"""Fill prepared segments with vectors: pixels through the image tower, texts through the text tower."""

from __future__ import annotations

from index.encoders import Encoder
from index.ingest.prepared import PreparedAsset


def embed_assets(encoder: Encoder, assets: list[PreparedAsset]) -> None:
    """Encode every segment still without a vector, in as few batched calls as possible.

    Long media embed their frames and windows while decoding (bounded memory); they arrive with vectors set.
    """
    image_segments = [s for a in assets for s in a.segments if s.pixels is not None]
    text_segments = [s for a in assets for s in a.segments if s.vector is None and s.pixels is None and s.text]
    if image_segments:
        vectors = encoder.encode_preprocessed([s.pixels for s in image_segments])
        for segment, vector in zip(image_segments, vectors, strict=True):
            segment.vector, segment.pixels = vector, None  # drop the tensor: it is the bulk of the memory
    if text_segments:
        vectors = encoder.encode_texts([s.text or "" for s in text_segments])
        for segment, vector in zip(text_segments, vectors, strict=True):
            segment.vector = vector
