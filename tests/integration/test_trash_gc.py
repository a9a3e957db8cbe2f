"""The trash and the sweep: `assets rm`, restore before the purge, then purge and `gc` leave no orphan anywhere."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from core.blobs import BlobStore
from core.db.engine import read_session, write_session
from core.db.models import Asset, AssetLocation, Segment
from core.settings import Settings
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.ingest.store import store_bytes
from index.search import SearchRequest, search
from index.service import get_live_index
from index.services.assets import restore_assets
from index.services.storage import purge_trash
from tests.conftest import env_for
from tests.media_images import distinct_image, write_images

REPO = Path(__file__).resolve().parents[2]


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    distinct_image(seed, (64, 48)).save(buffer, format="PNG")
    return buffer.getvalue()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=REPO, env=env_for(settings), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result


def _found(settings: Settings) -> set[str]:
    return {r.asset_id for r in search(SearchRequest(text="a picture", limit=50), settings)}


def _age_files(settings: Settings, seconds: float) -> None:
    old = time.time() - seconds
    for folder in ("blobs", "thumbnails"):
        for path in (settings.resolved_data_dir() / folder).glob("*/*"):
            os.utime(path, (old, old))


def _referenced_and_stored(settings: Settings) -> tuple[set[str], set[str]]:
    with read_session(settings) as session:
        keys = set(session.execute(select(AssetLocation.blob_key)).scalars())
        keys |= set(session.execute(select(Asset.thumbnail_key)).scalars())
        keys |= set(session.execute(select(Segment.thumbnail_key)).scalars())
    keys.discard(None)
    stored = {key for key, _ in BlobStore(settings.resolved_data_dir()).stored_keys()}
    return {k for k in keys if k}, stored


def test_rm_restore_purge_and_gc_leave_no_orphans(settings: Settings, tmp_path: Path) -> None:
    kept = store_bytes(_png(1), name="kept.png", settings=settings).asset_id
    deleted = store_bytes(_png(2), name="deleted.png", settings=settings).asset_id
    generated = store_bytes(_png(3), name="generated.png", source="generated", settings=settings).asset_id
    write_images(tmp_path / "lib", 1, start_seed=4)
    [in_place] = [o.asset_id for o in ingest(discover([tmp_path / "lib"], [tmp_path]), settings).outcomes]
    assert kept and deleted and generated and in_place
    with write_session(settings) as session:  # a blob key shared by a kept and a deleted asset
        shared = session.get(Asset, kept).blob_key  # type: ignore[union-attr]
        session.add(AssetLocation(asset_id=deleted, blob_key=shared))
    assert _found(settings) == {kept, deleted, generated, in_place}

    removed = json.loads(_cli(settings, "assets", "rm", deleted, generated, in_place, "--json").stdout)
    assert {a["asset_id"] for a in removed} == {deleted, generated, in_place}
    assert all(a["trashed_at"].endswith("+00:00") for a in removed)
    assert _found(settings) == {kept}
    restore_assets(settings, [in_place])  # before the purge: back in search
    assert _found(settings) == {kept, in_place}
    _cli(settings, "assets", "rm", in_place)

    fresh = purge_trash(settings, older_than_days=0)  # rows go at once; files younger than the grace stay
    assert (fresh.assets, fresh.files) == (3, 0)
    _age_files(settings, 2 * 3600)
    swept = json.loads(_cli(settings, "gc", "--json").stdout)
    assert swept["deleted_files"] == 5  # 2 blobs (deleted, generated) and 3 thumbnails; the shared blob stays
    referenced, stored = _referenced_and_stored(settings)
    assert referenced == stored  # no orphan file, no missing one
    assert BlobStore(settings.resolved_data_dir()).exists(str(shared))
    with read_session(settings) as session:
        segment_ids = set(session.execute(select(Segment.id)).scalars())
        assert set(session.execute(select(Asset.id)).scalars()) == {kept}
    assert _found(settings) == {kept}  # a search first catches this process's index up with the change log
    ids, _ = get_live_index(settings).export()
    assert set(ids.tolist()) == segment_ids  # no vector left behind
