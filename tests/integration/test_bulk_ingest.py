"""Bulk ingest at scale: resume after SIGKILL or Ctrl-C, manifests, allowed roots, and a corpus of bad files."""

from __future__ import annotations

import ctypes
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from core.db.engine import read_session
from core.db.models import Asset, AssetLocation, ChangeLog, Segment
from core.settings import Settings
from index.ingest.discover import PathNotAllowed, discover
from index.ingest.manifest import read_manifest
from index.ingest.pipeline import ingest
from index.reindex import rebuild_snapshot
from index.search import SearchRequest, search
from index.service import forget_live_indexes, get_live_index, snapshot_path
from index.vector.live import read_snapshot
from tests.conftest import env_for
from tests.media_images import distinct_image, write_images

REPO = Path(__file__).resolve().parents[2]
LIBRARY_SIZE = 1000
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 1,000 small distinct images (shared by the tests that only read it)."""
    root = tmp_path_factory.mktemp("bulk")
    write_images(root / "lib", LIBRARY_SIZE, suffix=".png")
    return root / "lib"


def _without_dac_override() -> None:
    # Tests run as root, and root reads a chmod-000 file anyway. Dropping these two capabilities from the
    # bounding set makes the exec'd CLI a root process that obeys file permissions, so the file is truly unreadable.
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if _LIBC.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", *args]


def _env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = env_for(settings)
    env.update(extra or {})
    return env


def _cli(
    settings: Settings, *args: str, cwd: Path, extra_env: dict[str, str] | None = None, obey_permissions: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*args),
        cwd=cwd,
        env=_env(settings, extra_env),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_without_dac_override if obey_permissions and os.geteuid() == 0 else None,
    )


def _indexed_count(settings: Settings) -> int:
    with read_session(settings) as session:
        return int(
            session.execute(select(func.count()).select_from(Asset).where(Asset.status == "indexed")).scalar_one()
        )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_halfway(settings: Settings, library: Path, sig: signal.Signals, log: Path) -> subprocess.Popen[bytes]:
    """Start a CLI ingest, wait until part of the library is committed, then send ``sig``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _command("ingest", library.name, "--workers", "1"),
            cwd=library.parent,
            env=_env(settings),
            stdout=out,
            stderr=out,
            # A child started from a background shell job inherits SIGINT as ignored: restore the default, so the
            # SIGINT sent below interrupts the ingest as Ctrl-C would.
            preexec_fn=_default_sigint,
        )
    deadline = time.monotonic() + 300
    while _indexed_count(settings) < 300:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


def _assert_index_equals_reindex(settings: Settings) -> None:
    """The live index (snapshot + change log) holds exactly the database's vectors, as `sensorium reindex` does."""
    forget_live_indexes()
    live_ids, live_vectors = get_live_index(settings).export()
    with read_session(settings) as session:
        stored = dict(session.execute(select(Segment.id, Segment.vector)).tuples().all())
    assert sorted(stored) == live_ids.tolist()
    assert np.array_equal(live_vectors, np.stack([np.frombuffer(stored[i], dtype=np.float32) for i in live_ids]))
    assert rebuild_snapshot(settings) == len(stored)
    forget_live_indexes()
    reindexed_ids, reindexed_vectors = get_live_index(settings).export()
    assert np.array_equal(reindexed_ids, live_ids) and np.array_equal(reindexed_vectors, live_vectors)


def _assert_each_file_indexed_once(settings: Settings, library: Path) -> None:
    with read_session(settings) as session:
        assets = session.execute(
            select(AssetLocation.path, Asset.status).join(Asset, AssetLocation.asset_id == Asset.id)
        ).all()
        segments_per_asset = (
            session.execute(select(func.count()).select_from(Segment).group_by(Segment.asset_id)).scalars().all()
        )
        additions = session.execute(select(ChangeLog.segment_id).where(ChangeLog.op == "add")).scalars().all()
    expected = sorted(str(p.resolve()) for p in library.iterdir())
    assert sorted(str(uri) for uri, _ in assets) == expected  # every file once, no duplicates
    assert {status for _, status in assets} == {"indexed"}
    assert len(segments_per_asset) == LIBRARY_SIZE and set(segments_per_asset) == {1}
    assert len(additions) == len(set(additions)) == LIBRARY_SIZE  # no segment was ever added twice


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_indexes_each_file_once(settings: Settings, library: Path, tmp_path: Path) -> None:
    killed = _interrupt_halfway(settings, library, signal.SIGKILL, tmp_path / "killed.log")
    assert killed.returncode == -signal.SIGKILL
    committed = _indexed_count(settings)
    assert 0 < committed < LIBRARY_SIZE, "the kill must land halfway"

    rerun = _cli(settings, "ingest", library.name, "--json", cwd=library.parent)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert (summary["indexed"], summary["skipped"], summary["failed"]) == (LIBRARY_SIZE - committed, committed, 0)
    _assert_each_file_indexed_once(settings, library)
    _assert_index_equals_reindex(settings)

    again = _cli(settings, "ingest", library.name, "--json", cwd=library.parent)
    assert json.loads(again.stdout)["skipped"] == LIBRARY_SIZE  # a finished library is a no-op


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(settings: Settings, library: Path, tmp_path: Path) -> None:
    log = tmp_path / "interrupted.log"
    stopped = _interrupt_halfway(settings, library, signal.SIGINT, log)
    output = log.read_text()
    assert stopped.returncode == 130, output
    assert "run the same command again to finish" in output and "Traceback" not in output
    committed = _indexed_count(settings)
    assert 0 < committed < LIBRARY_SIZE

    rerun = _cli(settings, "ingest", library.name, "--json", cwd=library.parent)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["indexed"] == LIBRARY_SIZE - committed
    _assert_each_file_indexed_once(settings, library)
    _assert_index_equals_reindex(settings)


def test_manifest_lines_labels_and_errors(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "root"
    photos = write_images(root / "photos", 2, start_seed=10)
    more = write_images(root / "more", 2, start_seed=20)
    outside = write_images(tmp_path / "outside", 1, start_seed=30)
    lines = [
        json.dumps(
            {"path": "photos/img-00010.png", "collection": "trips", "tags": ["beach"], "metadata": {"camera": "x100"}}
        ),
        json.dumps({"path": str(photos[1])}),
        '{"path": "photos/img-00010.png"',
        "",
        json.dumps({"collection": "trips"}),
        json.dumps({"path": str(outside[0])}),
        json.dumps({"path": "missing.png"}),
        json.dumps({"path": "more", "tags": ["folder"]}),
        json.dumps({"path": "photos/img-00011.png", "tags": "beach"}),
        json.dumps({"path": "photos/img-00011.png", "colour": "red"}),
        "[1, 2]",
    ]
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    result = _cli(settings, "ingest", "--manifest", "manifest.jsonl", "--tag", "batch1", "--json", cwd=root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    # The embedded CLI reads whatever its user can (the server keeps its allowed roots): line 6 is indexed too.
    assert (summary["indexed"], summary["failed"]) == (5, 6)
    reasons = {f["path"]: f["reason"] for f in summary["failures"]}
    manifest = str(root / "manifest.jsonl")
    assert "line 3 is not valid JSON" in reasons[f"{manifest}:3"]
    assert 'line 5: missing "path"' in reasons[f"{manifest}:5"]
    assert str(outside[0]) not in reasons
    assert "manifest line 7: no such file or folder" in reasons[str(root / "missing.png")]
    assert '"tags" must be a list of strings' in reasons[f"{manifest}:9"]
    assert "unknown field 'colour'" in reasons[f"{manifest}:10"]
    assert "expected a JSON object" in reasons[f"{manifest}:11"]

    with read_session(settings) as session:
        assets = {a.name: a for a in session.execute(select(Asset)).scalars()}
        first = assets[photos[0].name]
        assert (first.collections, first.tags, first.meta) == (["trips"], ["batch1", "beach"], {"camera": "x100"})
        assert (assets[photos[1].name].collections, assets[photos[1].name].tags) == (["default"], ["batch1"])
        assert all(assets[p.name].tags == ["batch1", "folder"] for p in more)
        assert assets[outside[0].name].tags == ["batch1"]

    missing = _cli(settings, "ingest", "--manifest", "nope.jsonl", cwd=root)
    assert missing.returncode == 2 and "manifest not found" in missing.stderr
    nothing = _cli(settings, "ingest", cwd=root)
    assert nothing.returncode == 2 and "--manifest" in nothing.stderr


def test_allowed_roots_refuse_paths_and_escaping_symlinks(settings: Settings, tmp_path: Path) -> None:
    """The server's rule (REST and workers): only paths under the allowed roots, symlinks resolved first."""
    root = tmp_path / "root"
    inside = write_images(root / "lib", 2, start_seed=40)
    outside = write_images(tmp_path / "elsewhere", 2, start_seed=50)
    (root / "lib" / "escape.png").symlink_to(outside[0])
    (root / "lib" / "alias.png").symlink_to(inside[0])  # resolves inside: allowed (and the same content)
    (root / "linked-dir").symlink_to(tmp_path / "elsewhere")
    (root / "manifest.jsonl").write_text(json.dumps({"path": "lib/escape.png"}) + "\n")
    (tmp_path / "outside.jsonl").write_text(json.dumps({"path": str(inside[1])}) + "\n")

    items = [
        *discover([root / "lib", outside[1], root / "linked-dir"], [root]),
        *read_manifest(root / "manifest.jsonl", [root]),
    ]
    summary = ingest(items, settings)
    assert (summary.indexed, summary.skipped) == (2, 1)
    reasons = {f.path: f.reason or "" for f in summary.failures}
    assert set(reasons) == {str(outside[1]), str(root / "linked-dir"), str(root / "lib" / "escape.png")}
    assert all("outside the allowed roots" in reason for reason in reasons.values())
    assert summary.failed == 4  # escape.png is refused twice: found in the folder and named by the manifest

    with pytest.raises(PathNotAllowed, match="outside the allowed roots"):  # the manifest itself is checked too
        read_manifest(tmp_path / "outside.jsonl", [root])


def test_embedded_cli_ingests_what_its_user_can_read(settings: Settings, tmp_path: Path) -> None:
    """The CLI runs with its user's permissions: a path outside the roots (and the cwd) is indexed."""
    outside = write_images(tmp_path / "elsewhere", 1, start_seed=60)
    roots = {"SENSORIUM_INGEST__ALLOWED_ROOTS": str(tmp_path / "root")}
    (tmp_path / "cwd").mkdir()
    result = _cli(settings, "ingest", str(outside[0]), "--json", cwd=tmp_path / "cwd", extra_env=roots)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["indexed"] == 1


def _png_bomb(width: int, height: int) -> bytes:
    """Return a tiny PNG that declares a huge all-black 1-bit image (what a decompression bomb looks like)."""
    data = zlib.compress(bytes((1 + (width + 7) // 8) * height), 1)  # every row: filter 0, all pixels 0

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _bad_corpus(folder: Path, indexed: list[Path]) -> dict[str, str]:
    """Write the bad and unusual files; return each bad file's name and a fragment of its expected reason."""
    folder.mkdir()
    jpeg = io.BytesIO()
    distinct_image(60, (320, 240)).save(jpeg, "JPEG")
    png = io.BytesIO()
    distinct_image(61, (320, 240)).save(png, "PNG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    middle = len(png.getvalue()) // 2
    corrupt = (
        png.getvalue()[:middle]
        + bytes(255 - b for b in png.getvalue()[middle : middle + 64])
        + png.getvalue()[middle + 64 :]
    )
    (folder / "corrupt.png").write_bytes(corrupt)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("meeting notes, not a picture\n")
    (folder / "bomb.png").write_bytes(_png_bomb(9000, 8000))  # 72 M pixels: over Sensorium's 64 M cap
    (folder / "huge-bomb.png").write_bytes(_png_bomb(20000, 20000))  # 400 M pixels: Pillow's own bomb check trips
    locked = folder / "locked.jpg"
    locked.write_bytes(jpeg.getvalue())
    locked.chmod(0)
    os.mkfifo(folder / "pipe.jpg")  # opening it would block for ever: it must be refused, not read
    sealed = folder / "sealed"
    write_images(sealed, 1, start_seed=65)
    sealed.chmod(0)
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")

    banner = np.random.default_rng(1).integers(0, 256, (4000, 1, 3), dtype=np.uint8)
    Image.fromarray(banner, "RGB").save(folder / "banner-1x4000.png")
    Image.fromarray(banner.transpose(1, 0, 2).copy(), "RGB").save(folder / "banner-4000x1.png")
    distinct_image(62, (800, 600)).convert("CMYK").save(folder / "cmyk.jpg")
    deep = (np.arange(200 * 150, dtype=np.uint32).reshape(150, 200) * 2).astype(np.uint16)
    Image.fromarray(deep).save(folder / "sixteen-bit.png")
    assert Image.open(folder / "sixteen-bit.png").mode.startswith("I")
    distinct_image(63).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette-alpha.png", transparency=0)
    distinct_image(64).save(folder / "café ☕ 日本語.png")
    (folder / "copy-of-indexed.png").write_bytes(indexed[0].read_bytes())
    return {
        "truncated.jpg": "truncated or corrupt",
        "corrupt.png": "truncated or corrupt",
        "empty.jpg": "empty file (0 bytes)",
        "notes.png": "not a recognised image format",
        "bomb.png": "over the limit of 64,000,000",
        "huge-bomb.png": "decompression bomb refused",
        "locked.jpg": "cannot read file: Permission denied",
        "pipe.jpg": "a named pipe, not a regular file",
        "loop.jpg": "cannot be resolved",
        "sealed": "cannot read folder: Permission denied",
    }


def _state(settings: Settings) -> dict[str, Any]:
    with read_session(settings) as session:
        assets = session.execute(select(Asset).order_by(Asset.id)).scalars().all()
        segments = session.execute(select(Segment.id, Segment.asset_id, Segment.vector).order_by(Segment.id)).all()
        return {
            "assets": [(a.id, a.sha256, a.uri, a.status, a.error, a.updated_at, tuple(a.tags)) for a in assets],
            "segments": [tuple(s) for s in segments],
        }


def test_bad_input_corpus_reports_each_file_and_touches_nothing(settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    good = write_images(lib / "good", 3, start_seed=70)
    assert ingest(discover([lib], [tmp_path]), settings).indexed == 3
    before = _state(settings)
    expected = _bad_corpus(lib / "odd", good)

    result = _cli(settings, "ingest", "lib", "--json", cwd=tmp_path, obey_permissions=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    summary = json.loads(result.stdout)
    reasons = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])
    unusual = {
        "banner-1x4000.png",
        "banner-4000x1.png",
        "cmyk.jpg",
        "sixteen-bit.png",
        "palette-alpha.png",
        "café ☕ 日本語.png",
    }
    assert (summary["indexed"], summary["skipped"], summary["failed"]) == (len(unusual), 4, len(expected))

    after = _state(settings)
    assert len(before["assets"]) == 3 and set(before["assets"]) <= set(after["assets"])
    assert set(before["segments"]) <= set(after["segments"])  # already indexed rows: untouched, byte for byte
    with read_session(settings) as session:
        rows = {a.name: a for a in session.execute(select(Asset)).scalars()}
        assert {a.name for a in rows.values() if a.status == "indexed"} == {p.name for p in good} | unusual
        assert rows["banner-1x4000.png"].width == 1 and rows["banner-1x4000.png"].height == 4000
        assert (rows["cmyk.jpg"].width, rows["cmyk.jpg"].height) == (800, 600)
        assert all(rows[name].thumbnail_key for name in unusual)
        assert rows["truncated.jpg"].status == "failed" and "truncated" in (rows["truncated.jpg"].error or "")
    found = search(SearchRequest(image=(lib / "odd" / "café ☕ 日本語.png").read_bytes(), limit=1), settings)
    assert found[0].name == "café ☕ 日本語.png" and found[0].uri == str(lib / "odd" / "café ☕ 日本語.png")

    again = _cli(settings, "ingest", "lib", cwd=tmp_path, obey_permissions=True)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert f"indexed 0, skipped {3 + len(unusual) + 1}, failed {len(expected)}" in again.stdout
    for name, fragment in expected.items():  # plain output names every bad file with its reason, on stderr
        assert any(
            line.startswith("failed: ") and name in line and fragment in line for line in again.stderr.splitlines()
        )
    assert _state(settings)["segments"] == after["segments"]
    assert read_snapshot(snapshot_path(settings), settings.index) is not None
