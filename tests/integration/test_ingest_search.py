"""Ingest images and search by text, image and example, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.db.engine import read_session
from core.db.models import Asset, Segment
from core.settings import Settings
from index.assets import AssetNotFound, delete_asset
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.search import SearchError, SearchFilters, SearchRequest, search
from tests.media_images import distinct_image, write_images


def _ingest(settings: Settings, *paths: Path, collection: str = "default", tags: list[str] | None = None):  # type: ignore[no-untyped-def]
    return ingest(discover(list(paths), None, collection, tags), settings)


def test_query_by_image_returns_the_same_asset_first(settings: Settings, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "lib", 200)
    summary = _ingest(settings, tmp_path / "lib")
    assert (summary.indexed, summary.failed) == (200, 0)
    by_path = {o.path: o.asset_id for o in summary.outcomes}
    for path in paths[::10]:
        results = search(SearchRequest(image=path.read_bytes(), limit=5), settings)
        assert results[0].asset_id == by_path[str(path.resolve())]
        assert results[0].score is not None and results[0].score > 0.99
        assert results[0].name == path.name and results[0].kind == "image"
        assert results[0].segment.kind == "image" and results[0].segment.t_start is None
    unseen = tmp_path / "unseen.png"
    distinct_image(10_000).save(unseen)
    results = search(SearchRequest(image=unseen.read_bytes(), limit=20), settings)
    scores = [r.score or 0.0 for r in results]
    assert len(results) == 20 and scores == sorted(scores, reverse=True)
    assert len({r.asset_id for r in results}) == 20


def test_reingest_is_a_noop_and_records_hashes(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "lib", 12)
    first = _ingest(settings, tmp_path / "lib")
    second = _ingest(settings, tmp_path / "lib")
    assert first.indexed == 12 and second.indexed == 0 and second.skipped == 12
    with read_session(settings) as session:
        assets = session.execute(select(Asset)).scalars().all()
        assert len(assets) == 12 and all(len(a.sha256) == 64 and a.uri for a in assets)
        assert session.execute(select(Segment)).scalars().all().__len__() == 12
    thumbs = list((settings.data_dir / "thumbnails").rglob("*.jpg"))
    assert len(thumbs) == 12


def test_text_search_filters_and_pages(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "a", 10, start_seed=0)
    write_images(tmp_path / "b", 10, start_seed=100)
    _ingest(settings, tmp_path / "a", collection="alpha", tags=["red", "x"])
    _ingest(settings, tmp_path / "b", collection="beta", tags=["red"])
    everything = search(SearchRequest(text="a photo", limit=20), settings)
    assert len(everything) == 20
    scores = [r.score or 0.0 for r in everything]
    assert scores == sorted(scores, reverse=True)
    page1 = search(SearchRequest(text="a photo", limit=7), settings)
    page2 = search(SearchRequest(text="a photo", limit=7, offset=7), settings)
    assert [r.asset_id for r in page1 + page2] == [r.asset_id for r in everything[:14]]
    alpha = search(SearchRequest(text="a photo", limit=50, filters=SearchFilters(collections=["alpha"])), settings)
    assert len(alpha) == 10 and all(r.name.startswith("img-000") for r in alpha)
    tagged = search(SearchRequest(text="a photo", limit=50, filters=SearchFilters(tags=["red", "x"])), settings)
    assert {r.asset_id for r in tagged} == {r.asset_id for r in alpha}
    assert search(SearchRequest(text="a photo", filters=SearchFilters(kinds=["video"])), settings) == []
    threshold = everything[4].score or 0.0
    above = search(SearchRequest(text="a photo", limit=50, min_score=threshold), settings)
    assert [r.asset_id for r in above] == [r.asset_id for r in everything[:5]]


def test_more_like_this_excludes_the_example(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "lib", 8)
    summary = _ingest(settings, tmp_path / "lib")
    example = summary.outcomes[0].asset_id
    assert example is not None
    results = search(SearchRequest(asset_id=example, limit=10), settings)
    assert len(results) == 7 and example not in {r.asset_id for r in results}
    with pytest.raises(SearchError, match="no asset"):
        search(SearchRequest(asset_id="missing"), settings)


def test_invalid_requests_are_refused(settings: Settings) -> None:
    for request, message in [
        (SearchRequest(), "exactly one"),
        (SearchRequest(text="  "), "empty"),
        (SearchRequest(text="x", limit=0), "limit"),
        (SearchRequest(text="x", limit=1001), "limit"),
        (SearchRequest(text="x", offset=-1), "offset"),
        (SearchRequest(text="x", min_score=float("nan")), "min_score"),
        (SearchRequest(image=b"not an image"), "query image unusable"),
    ]:
        with pytest.raises(SearchError, match=message):
            search(request, settings)


def test_bad_files_are_reported_and_the_batch_goes_on(settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    write_images(lib, 3)
    (lib / "empty.jpg").write_bytes(b"")
    (lib / "text.png").write_text("this is not an image")
    good = lib / "img-00000.png"
    (lib / "truncated.png").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    summary = _ingest(settings, lib)
    reasons = {Path(o.path).name: o.reason for o in summary.failures}
    assert summary.indexed == 3 and summary.failed == 3
    assert "empty file" in (reasons["empty.jpg"] or "")
    assert "not a recognised image" in (reasons["text.png"] or "")
    assert "truncated or corrupt" in (reasons["truncated.png"] or "")
    with read_session(settings) as session:
        failed = session.execute(select(Asset).where(Asset.status == "failed")).scalars().all()
    assert {a.name for a in failed} == {"text.png", "truncated.png"}  # the empty file has no content hash
    assert len(search(SearchRequest(text="x", limit=10), settings)) == 3


def test_delete_removes_asset_from_results(settings: Settings, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "lib", 5)
    summary = _ingest(settings, tmp_path / "lib")
    victim = next(o.asset_id for o in summary.outcomes if o.path == str(paths[2].resolve()))
    assert victim is not None
    assert delete_asset(victim, settings) == 1
    results = search(SearchRequest(image=paths[2].read_bytes(), limit=10), settings)
    assert victim not in {r.asset_id for r in results} and len(results) == 4
    with pytest.raises(AssetNotFound):
        delete_asset(victim, settings)
