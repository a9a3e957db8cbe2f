"""One asset per content: the two-collection story, merging the duplicates older releases made, the schema guard."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from core.db.engine import dispose_engines, get_engine, read_session, write_session
from core.db.migrate import SchemaTooNew, alembic_config
from core.db.models import Asset, AssetAlias, ChangeLog, Segment
from core.settings import Settings
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.search import SearchFilters, SearchRequest, search
from index.service import forget_live_indexes
from index.services.assets import AssetFilters, get_asset, list_assets
from index.services.schema import migrate, schema_state
from tests.media_images import write_images

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"


def _in(settings: Settings, collection: str) -> set[str]:
    request = SearchRequest(text="a photo", limit=200, filters=SearchFilters(collections=[collection]))
    return {r.asset_id for r in search(request, settings)}


def test_two_collections_one_asset_per_file(settings: Settings, tmp_path: Path) -> None:
    pictures = tmp_path / "Pictures"
    write_images(pictures / "2023", 28, start_seed=100)
    write_images(pictures, 32, start_seed=200)
    first = ingest(discover([pictures / "2023"], [tmp_path], "family", ["kids"]), settings)
    second = ingest(discover([pictures], [tmp_path], "photos", ["archive"]), settings)
    assert (first.indexed, second.indexed, second.skipped) == (28, 32, 28)

    assets = list_assets(settings, AssetFilters(), 1000)
    assert len(assets) == 60 and len({a.sha256 for a in assets}) == 60
    in_2023 = {a.id for a in assets if "2023" in (a.uri or "")}
    for asset in assets:
        if asset.id in in_2023:
            assert (asset.collections, asset.tags) == (["family", "photos"], ["archive", "kids"])
        else:
            assert (asset.collections, asset.tags) == (["photos"], ["archive"])
    assert _in(settings, "family") == in_2023
    assert _in(settings, "photos") == {a.id for a in assets}
    rerun = ingest(discover([pictures], [tmp_path], "photos", ["archive"]), settings)
    assert (rerun.indexed, rerun.skipped) == (0, 60)


def test_one_content_at_two_paths_is_one_asset_with_two_locations(settings: Settings, tmp_path: Path) -> None:
    [original] = write_images(tmp_path / "lib" / "a", 1, start_seed=300)
    copy = tmp_path / "lib" / "b" / "copy.png"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    summary = ingest(discover([tmp_path / "lib"], [tmp_path]), settings)
    assert (summary.indexed, summary.skipped) == (1, 1)
    [asset] = list_assets(settings, AssetFilters(), 10)
    assert sorted(loc.path or "" for loc in asset.locations) == [str(original), str(copy)]
    oldest = min(asset.locations, key=lambda loc: (loc.created_at, loc.id))
    assert asset.uri == oldest.path  # the oldest live location is the one shown


def _load_legacy(settings: Settings) -> None:
    """Put the database the release before this one made for the story into place (SQLite file or SQL dump)."""
    if settings.database_url is None:
        data = settings.resolved_data_dir()
        shutil.copyfile(FIXTURES / "legacy.sqlite", data / "sensorium.db")
        return
    import psycopg

    with psycopg.connect(settings.database_url.replace("+psycopg", ""), autocommit=True) as connection:
        dump = (FIXTURES / "legacy.postgresql.sql").read_text().splitlines()
        # Plain pg_dump output; its psql meta-commands (\\restrict) are not SQL.
        script = "\n".join(line for line in dump if not line.startswith("\\"))
        connection.execute(script)  # type: ignore[call-overload]


def _legacy_rows(settings: Settings) -> list[tuple[str, str, str]]:
    state = schema_state(settings)
    assert state.revision == "0003" and state.duplicates == 4
    from sqlalchemy import create_engine

    engine = create_engine(settings.resolved_database_url())
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, sha256, collection FROM assets ORDER BY created_at")).all()
    engine.dispose()
    return [(r[0], r[1], r[2]) for r in rows]


def test_migrate_merges_the_duplicates_of_the_old_release(settings: Settings) -> None:
    _load_legacy(settings)
    legacy = _legacy_rows(settings)
    assert len(legacy) == 11 and len({sha for _, sha, _ in legacy}) == 7
    with pytest.raises(RuntimeError, match="sensorium migrate"):
        get_engine(settings)  # an automatic upgrade never merges
    state = migrate(settings)
    assert state.current and state.duplicates == 0

    assets = list_assets(settings, AssetFilters(), 100)
    assert len(assets) == 7
    family = {a.id for a in assets if "family" in a.collections}
    assert len(family) == 4
    for asset in assets:
        if asset.id in family:
            assert (asset.collections, asset.tags) == (["family", "photos"], ["archive", "kids"])
        else:
            assert (asset.collections, asset.tags) == (["photos"], ["archive"])
    with read_session(settings) as session:
        aliases = dict(session.execute(select(AssetAlias.old_id, AssetAlias.asset_id)).tuples().all())
        segments = session.execute(select(func.count()).select_from(Segment)).scalar_one()
        deletions = set(session.execute(select(ChangeLog.segment_id).where(ChangeLog.op == "delete")).scalars())
    assert len(aliases) == 4 and segments == 7 and len(deletions) == 4
    for old_id, sha, _ in legacy:  # every old id (job results, provenance, signed URLs) still finds its asset
        assert get_asset(settings, old_id).sha256 == sha
    forget_live_indexes()
    assert _in(settings, "family") == family
    assert _in(settings, "photos") == {a.id for a in assets}


def test_alembic_has_a_single_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


def test_code_older_than_the_schema_refuses_to_start(settings: Settings) -> None:
    get_engine(settings)
    with write_session(settings) as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    dispose_engines()
    with pytest.raises(SchemaTooNew, match="newer than this code"):
        get_engine(settings)


def test_concurrent_ingests_of_one_folder_embed_each_file_once(settings: Settings, tmp_path: Path) -> None:
    from index.encoders import get_encoder

    write_images(tmp_path / "lib", 24, start_seed=400)
    encoder = get_encoder(settings.encoder)
    embedded: list[int] = []
    lock = threading.Lock()
    original = encoder.encode_preprocessed

    def counting(images, *args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            embedded.append(len(images))
        return original(images, *args, **kwargs)

    encoder.encode_preprocessed = counting  # type: ignore[method-assign]
    try:
        summaries = []

        def run() -> None:
            summaries.append(ingest(discover([tmp_path / "lib"], [tmp_path]), settings, encoder=encoder))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        encoder.encode_preprocessed = original  # type: ignore[method-assign]
    assert sum(s.indexed for s in summaries) == 24 and sum(s.skipped for s in summaries) == 24
    assert sum(embedded) == 24  # the second ingest skipped every file before decoding or embedding it
    with read_session(settings) as session:
        assert session.execute(select(func.count()).select_from(Asset)).scalar_one() == 24
