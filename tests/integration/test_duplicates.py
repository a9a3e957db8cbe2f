"""Near-duplicates end to end on SQLite and PostgreSQL: the skip policy, groups, keep-one with no orphan left."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import delete, func, select

from core.db.engine import read_session, write_session
from core.db.hash_models import AssetVariant, PerceptualHash
from core.db.models import Asset, Segment
from core.settings import Settings
from index.duplicates.rehash import rehash
from index.duplicates.service import act_on_group, find_groups, group_of
from index.ingest.discover import discover
from index.ingest.pipeline import ingest
from index.ingest.prepared import Outcome
from index.ingest.store import store_bytes
from index.search import SearchFilters, SearchRequest, search
from index.service import get_live_index
from index.services.storage import purge_trash
from tests.integration.test_cli import run_cli
from tests.near_copies import jpeg_bytes, photo_like, photo_video, recompressed, resized_half


def _files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_skip_policy_leaves_the_recompressed_copy_out_and_names_it(settings: Settings, tmp_path: Path) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    (library / "beach.jpg").write_bytes(jpeg_bytes(photo_like(1)))
    (library / "forest.jpg").write_bytes(jpeg_bytes(photo_like(2)))
    first = run_cli(settings, "ingest", "lib", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    copies = tmp_path / "phone"
    copies.mkdir()
    (copies / "beach-from-chat.jpg").write_bytes(recompressed(photo_like(1)))
    (copies / "city.jpg").write_bytes(jpeg_bytes(photo_like(3)))
    second = run_cli(settings, "ingest", "phone", "--near-duplicates", "skip", "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert (summary["indexed"], summary["skipped"]) == (1, 1)
    (skipped,) = summary["near_duplicates_skipped"]
    assert skipped["path"].endswith("beach-from-chat.jpg")
    assert skipped["reason"].startswith("near duplicate of beach.jpg")
    with read_session(settings) as session:
        names = set(session.execute(select(Asset.name)).scalars())
        hashed = session.execute(select(func.count()).select_from(PerceptualHash)).scalar_one()
    assert names == {"beach.jpg", "forest.jpg", "city.jpg"}
    assert hashed == 3
    thumbnails = _files(settings.resolved_data_dir() / "thumbnails")
    assert len(thumbnails) == 3  # the skipped copy's thumbnail was not left behind

    listed = run_cli(settings, "ingest", "phone", "--near-duplicates", "sideways", cwd=tmp_path)
    assert listed.returncode == 2 and "use index, skip, link" in listed.stderr


def test_keep_one_after_purge_leaves_one_asset_and_no_orphans(settings: Settings) -> None:
    original = photo_like(7)
    kept = store_bytes(jpeg_bytes(original), name="master.jpg", tags=["trip"], settings=settings)
    web = store_bytes(resized_half(original), name="web.jpg", tags=["export"], collection="web", settings=settings)
    chat = store_bytes(recompressed(original), name="chat.jpg", tags=["chat"], settings=settings)
    other = store_bytes(jpeg_bytes(photo_like(8)), name="other.jpg", settings=settings)
    assert all(o.status == "indexed" for o in (kept, web, chat, other))

    (group,) = find_groups("near", settings=settings)
    assert [m["name"] for m in group.members][0] == "master.jpg"  # the largest, then oldest, copy comes first
    assert {m["name"] for m in group.members} == {"master.jpg", "web.jpg", "chat.jpg"}
    web_member = next(m for m in group.members if m["name"] == "web.jpg")
    assert web_member["differences"]["pixels_ratio"] == 0.25 and web_member["distance"] <= 26
    assert group_of(other.asset_id or "", settings=settings) is None

    action = act_on_group(kept.asset_id or "", trash_others=True, merge_labels=True, settings=settings)
    assert set(action.trashed) == {web.asset_id, chat.asset_id}
    assert action.added_labels == ["chat", "export", "collection:web"]
    assert find_groups("near", settings=settings) == []  # trashed copies leave the groups at once

    no_grace = settings.model_copy(update={"assets": settings.assets.model_copy(update={"gc_grace_s": 0})})
    purged = purge_trash(no_grace, older_than_days=0)
    assert purged.assets == 2
    with read_session(settings) as session:
        assets = {a.name: a for a in session.execute(select(Asset)).scalars()}
        segments = session.execute(select(Segment.asset_id)).scalars().all()
        hashes = session.execute(select(PerceptualHash.asset_id)).scalars().all()
        assert set(assets) == {"master.jpg", "other.jpg"}
        assert assets["master.jpg"].tags == ["chat", "export", "trip"]
        assert assets["master.jpg"].collections == ["default", "web"]
        keys = {a.blob_key for a in assets.values()} | {a.thumbnail_key for a in assets.values()}
    assert sorted(segments) == sorted(hashes) == sorted([kept.asset_id or "", other.asset_id or ""])
    data = settings.resolved_data_dir()
    stored = {f"blobs/{name}" for name in _files(data / "blobs")} | {
        f"thumbnails/{name}" for name in _files(data / "thumbnails")
    }
    assert stored == keys  # no orphan blob or thumbnail
    index = get_live_index(settings)
    with read_session(settings) as session:
        index.catch_up(session)
    assert len(index) == 2  # the trashed copies' vectors left the index


def _ingest(settings: Settings, folder: Path, policy: str) -> list[Outcome]:
    return ingest(discover([folder], [folder.parent], "default", []), settings, near_duplicates=policy).outcomes


def test_link_policy_indexes_a_hidden_variant_of_the_best(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "master.jpg").write_bytes(jpeg_bytes(photo_like(21)))
    (master,) = _ingest(settings, tmp_path / "lib", "link")
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "web.jpg").write_bytes(resized_half(photo_like(21)))
    (tmp_path / "later" / "web-chat.jpg").write_bytes(recompressed(photo_like(21)))
    web, chat = _ingest(settings, tmp_path / "later", "link")
    assert (web.status, chat.status) == ("indexed", "indexed")
    with read_session(settings) as session:
        links = dict(session.execute(select(AssetVariant.asset_id, AssetVariant.best_id)).tuples().all())
    assert links == {web.asset_id: master.asset_id, chat.asset_id: master.asset_id}  # both point at the best

    query = SearchRequest(image=jpeg_bytes(photo_like(21)), mode="vector", limit=10)
    assert [r.asset_id for r in search(query, settings)] == [master.asset_id]  # the variants stay hidden
    query.filters = SearchFilters(include_variants=True)
    assert {r.asset_id for r in search(query, settings)} == {master.asset_id, web.asset_id, chat.asset_id}
    (group,) = find_groups("near", settings=settings)
    assert [m["variant_of"] for m in group.members] == [None, master.asset_id, master.asset_id]


def test_rehash_fills_in_assets_indexed_before(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.jpg").write_bytes(jpeg_bytes(photo_like(31)))
    (tmp_path / "lib" / "b.jpg").write_bytes(recompressed(photo_like(31)))
    (tmp_path / "lib" / "c.jpg").write_bytes(jpeg_bytes(photo_like(32)))
    _ingest(settings, tmp_path / "lib", "index")
    with write_session(settings) as session:
        before = session.execute(select(PerceptualHash.asset_id, PerceptualHash.phash)).tuples().all()
        session.execute(delete(PerceptualHash))
    (tmp_path / "lib" / "c.jpg").unlink()  # a file gone from disk is reported, the rest goes on
    failures: list[str] = []
    summary = rehash(settings, on_failure=lambda asset_id, reason: failures.append(reason))
    assert (summary.hashed, summary.failed) == (2, 1) and "No such file" in failures[0]
    with read_session(settings) as session:
        after = session.execute(select(PerceptualHash.asset_id, PerceptualHash.phash)).tuples().all()
    assert set(after) < set(before) and len(after) == 2
    (group,) = find_groups("near", settings=settings)
    assert {m["name"] for m in group.members} == {"a.jpg", "b.jpg"}


def test_video_scene_frames_are_hashed_and_two_cuts_group(settings: Settings, tmp_path: Path) -> None:
    library = tmp_path / "cuts"
    library.mkdir()
    # 3 s scenes: the cut detector misses a hard cut 2 s before the end of a video (see the session note).
    photo_video(library / "master.mp4", [41, 42, 43], (512, 384), scene_s=3.0)
    photo_video(library / "web-cut.mp4", [41, 42, 43], (256, 192), scene_s=3.0)
    photo_video(library / "another.mp4", [44, 45], (512, 384), scene_s=3.0)
    outcomes = _ingest(settings, library, "index")
    assert [o.status for o in outcomes] == ["indexed", "indexed", "indexed"]
    with read_session(settings) as session:
        frames = (
            session.execute(select(Segment.asset_id, Segment.t_start).where(Segment.kind == "frame")).tuples().all()
        )
        hashed = session.execute(select(PerceptualHash.asset_id, PerceptualHash.t_start)).tuples().all()
    assert len(frames) == 8 and sorted(hashed) == sorted(frames)  # one hash per scene frame, at its time
    (group,) = find_groups("near", settings=settings)
    assert [m["name"] for m in group.members] == ["master.mp4", "web-cut.mp4"]
    assert group.members[1]["distance"] <= 26 and group.members[0]["kind"] == "video"
