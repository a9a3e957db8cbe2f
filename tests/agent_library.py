"""Libraries for agent tests: real ingested images, and a planted asset that matches one text query exactly."""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.settings import Settings
from tests.media_images import write_images


def ingest_images(settings: Settings, folder: Path, count: int) -> list[str]:
    """Ingest ``count`` distinct images through the real pipeline; return their asset ids."""
    from index.ingest.discover import discover
    from index.ingest.pipeline import ingest

    write_images(folder, count)
    summary = ingest(discover([folder], [folder.parent]), settings)
    assert summary.indexed == count, summary
    return [o.asset_id for o in summary.outcomes if o.asset_id]


def plant(settings: Settings, text: str, name: str = "planted.png") -> str:
    """Store an image asset whose vector is the encoder's embedding of ``text`` (cosine 1 for that query)."""
    from index.encoders import get_encoder
    from index.ingest.claims import Sighting, claim
    from index.ingest.discover import Candidate
    from index.ingest.prepared import PreparedAsset, PreparedSegment
    from index.ingest.writer import write_batch

    encoder = get_encoder(settings.encoder)
    candidate = Candidate(path=settings.resolved_data_dir() / name, kind="image", name=name)
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    claimed = claim(settings, Sighting(sha256, 1, "image", name, path=str(candidate.path)))
    prepared = PreparedAsset(
        asset_id=claimed.asset_id,
        candidate=candidate,
        sha256=sha256,
        size=1,
        mime="image/png",
        width=64,
        height=64,
        segments=[PreparedSegment(kind="image", vector=encoder.encode_texts([text])[0])],
    )
    [outcome] = write_batch(settings, [prepared], [], encoder.model_id)
    assert outcome.asset_id is not None
    return outcome.asset_id
