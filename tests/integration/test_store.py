"""Storing uploaded or generated media: blob copy, indexing, duplicates, and refusing bad bytes."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import select

from core.db.engine import read_session
from core.db.models import Asset
from core.settings import Settings
from index.ingest.store import store_bytes
from index.search import SearchRequest, search
from tests.media_images import distinct_image


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    distinct_image(seed).save(buffer, format="PNG")
    return buffer.getvalue()


def test_stored_bytes_become_searchable_assets(settings: Settings) -> None:
    data = _png(1)
    outcome = store_bytes(data, name="gen.png", source="generated", metadata={"seed": 5}, settings=settings)
    assert outcome.status == "indexed" and outcome.asset_id
    again = store_bytes(data, name="copy.png", settings=settings)
    assert again.status == "skipped" and again.asset_id == outcome.asset_id
    with read_session(settings) as session:
        asset = session.get(Asset, outcome.asset_id)
        assert asset is not None and asset.source == "generated" and asset.uri is None
        assert asset.meta == {"seed": 5} and asset.blob_key and asset.blob_key.endswith(".png")
        assert (settings.data_dir / "blobs" / asset.blob_key[6:8] / asset.blob_key[6:]).read_bytes() == data
    top = search(SearchRequest(image=data, limit=1), settings)[0]
    assert top.asset_id == outcome.asset_id and top.uri == asset.blob_key


def test_corrupt_bytes_are_refused_and_nothing_is_kept(settings: Settings) -> None:
    outcome = store_bytes(b"\x89PNG\r\n\x1a\n broken", name="bad.png", settings=settings)
    assert outcome.status == "failed" and "not a recognised image" in (outcome.reason or "")
    assert store_bytes(b"hello", name="notes.txt", settings=settings).status == "failed"
    with read_session(settings) as session:
        assert session.execute(select(Asset)).first() is None
    blobs = settings.data_dir / "blobs"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]


def test_store_file_keeps_original_name(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "upload.tmp"
    path.write_bytes(_png(3))
    from index.ingest.store import store_file

    outcome = store_file(path, name="holiday photo.png", tags=["trip"], settings=settings)
    results = search(SearchRequest(image=path.read_bytes(), limit=1), settings)
    assert outcome.status == "indexed" and results[0].name == "holiday photo.png"
