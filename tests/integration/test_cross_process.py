"""Every process's index follows the database: additions, deletions, and concurrent writers."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from core.db.engine import read_session, write_session
from core.db.models import Asset, Segment
from core.settings import Settings
from index.assets import delete_asset
from index.ingest.writer import log_changes
from index.library import claim_model
from index.vector.live import LiveIndex
from tests.conftest import TINY_ENCODER, env_for
from tests.media_images import write_images

REPO = Path(__file__).resolve().parents[2]


class Searcher:
    """A separate Python process holding its own index."""

    def __init__(self, settings: Settings) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.searcher_process"],
            cwd=REPO,
            env=env_for(settings),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "searcher process died"
        return dict(json.loads(line))

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _cli(settings: Settings, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=cwd,
        env=env_for(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_other_process_sees_additions_and_deletions(settings: Settings, tmp_path: Path) -> None:
    first = write_images(tmp_path / "lib" / "first", 5, start_seed=0)
    assert _cli(settings, "ingest", "first", cwd=tmp_path / "lib").returncode == 0
    searcher = Searcher(settings)
    try:
        assert searcher.ready["ready"] == 5
        later = write_images(tmp_path / "lib" / "later", 5, start_seed=50)
        result = _cli(settings, "ingest", "later", "--json", cwd=tmp_path / "lib")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["indexed"] == 5
        reply = searcher.ask(image=str(later[3]))
        assert reply["index_size"] == 10
        found = reply["results"][0]
        assert found["name"] == later[3].name and found["score"] > 0.99
        delete_asset(found["asset_id"], settings)
        reply = searcher.ask(image=str(later[3]))
        assert reply["index_size"] == 9
        assert found["asset_id"] not in {r["asset_id"] for r in reply["results"]}
        assert reply["results"][0]["name"] != later[3].name
        assert searcher.ask(image=str(first[0]))["results"][0]["name"] == first[0].name
    finally:
        searcher.close()


def _writer(settings: Settings, asset_count: int, seed: int, written: list[int], errors: list[BaseException]) -> None:
    rng = random.Random(seed)
    try:
        for _ in range(asset_count):
            with write_session(settings) as session:
                asset = Asset(sha256=f"{rng.getrandbits(256):064x}", kind="image", name="synthetic", status="indexed")
                segments = [
                    Segment(asset=asset, kind="image", model_id=_model_id(), vector=_vector(rng).tobytes())
                    for _ in range(rng.randint(1, 3))
                ]
                session.add(asset)
                session.add_all(segments)
                session.flush()
                log_changes(session, [s.id for s in segments], "add")
                time.sleep(rng.random() * 0.01)  # widen the window between taking a number and committing
                written.extend(s.id for s in segments)
    except BaseException as exc:  # surfaced by the test thread
        errors.append(exc)


def _model_id() -> str:
    from index.encoders.openclip import model_id_for

    return model_id_for(TINY_ENCODER)


def _vector(rng: random.Random) -> np.ndarray:
    vector = np.array([rng.gauss(0, 1) for _ in range(64)], dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.mark.integration
def test_concurrent_writers_never_lose_an_addition_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, encoder=TINY_ENCODER)
    with write_session(settings) as session:
        claim_model(session, _model_id())
    reader = LiveIndex(_model_id(), 64, tmp_path / "snapshot")
    with read_session(settings) as session:
        reader.load(session)
    written: list[int] = []
    errors: list[BaseException] = []
    writers = [threading.Thread(target=_writer, args=(settings, 40, seed, written, errors)) for seed in range(4)]
    for thread in writers:
        thread.start()
    while any(t.is_alive() for t in writers):
        with read_session(settings) as session:
            reader.catch_up(session)  # catches up while numbers are being taken and committed out of order
    for thread in writers:
        thread.join()
    assert not errors
    with read_session(settings) as session:
        reader.catch_up(session)
        in_db = set(session.execute(select(Segment.id)).scalars())
    probe = np.stack([_vector(random.Random(i)) for i in range(1)])
    _, ids = reader.search(probe, len(in_db) + 10)
    assert set(ids[0][ids[0] >= 0].tolist()) == in_db == set(written)
    assert len(reader) == len(in_db)
