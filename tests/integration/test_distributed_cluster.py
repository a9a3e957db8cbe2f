"""Production mode on one machine: two API server processes and two ingest workers over real PostgreSQL and Redis.

A distributed ingest of 500 images in chunks of 50 runs while both API processes keep searching (each search
catches its index up from the change log while the two workers commit concurrently); one worker is SIGKILLed
mid-chunk. Every image must end indexed exactly once, and both API processes must return all of them to a search,
without a restart: a change-log entry a reader skipped would leave its asset missing from that process for good.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db.engine import dispose_engines, read_session
from core.db.models import Asset, ChangeLog, Job, Segment
from core.settings import Settings
from tests.api.conftest import listening_socket
from tests.conftest import TINY_ENCODER, TINY_ENV, _postgres_database
from tests.jobs_helpers import free_redis_db, stop_processes, wait_until
from tests.media_images import write_images

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
IMAGES = 500
CHUNK = 50
LEASE_S = 4.0


def _call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Cluster:
    """The processes of one test: API servers and ingest workers sharing a data dir, a database and a broker."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def _start(self, name: str, *args: str, pass_fds: tuple[int, ...] = ()) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *args],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds,
            )
        self.processes.append(process)
        return process, log

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        process, log = self._start(name, "worker", "--queues", "ingest", "--concurrency", "1")
        wait_until(lambda: b" ready." in log.read_bytes() or process.poll() is not None, 180, f"{name} to start")
        assert process.poll() is None, log.read_text(errors="replace")
        return process

    def start_api(self, name: str) -> int:
        with listening_socket() as sock:  # bound here: no other process can take the port before the server
            port = int(sock.getsockname()[1])
            process, log = self._start(name, "serve", "--fd", str(sock.fileno()), pass_fds=(sock.fileno(),))

        def ready() -> bool:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                return _call(port, "GET", "/readyz")[0] == 200
            except OSError:
                return False

        wait_until(ready, 180, f"{name} to be ready")
        return port

    def stop(self) -> None:
        stop_processes(self.processes)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, Settings, Path]]:
    import redis

    redis_db = free_redis_db()
    broker = f"redis://127.0.0.1:6379/{redis_db}"
    databases = _postgres_database()
    database_url = next(databases)
    library = tmp_path / "library"
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, broker_url=broker, encoder=TINY_ENCODER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    env.update(TINY_ENV)
    env.update(
        {
            "SENSORIUM_DATA_DIR": str(settings.data_dir),
            "SENSORIUM_DATABASE_URL": database_url,
            "SENSORIUM_BROKER_URL": broker,
            "SENSORIUM_INGEST__ALLOWED_ROOTS": json.dumps([str(library)]),
            "SENSORIUM_INGEST__CHUNK_SIZE": str(CHUNK),
            "SENSORIUM_JOBS__LEASE_S": str(LEASE_S),
            "SENSORIUM_JOBS__HEARTBEAT_S": "0.5",
            "SENSORIUM_AUTH__DISABLED": "true",
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",  # six processes on two cores: spinning OpenMP teams would starve each other
        }
    )
    running = Cluster(env, tmp_path)
    try:
        yield running, settings, library
    finally:
        running.stop()
        client = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
        client.flushdb()
        client.close()
        dispose_engines()
        next(databases, None)


class Searcher(threading.Thread):
    """Searches one API process over and over, so its index catches up while the workers commit."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.searches = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            status, body = _call(self.port, "POST", "/v1/search", {"text": "a photo", "limit": 1000})
            if status != 200:
                self.errors.append(f"{status}: {body}")
            self.searches += 1


def _found(port: int) -> list[str]:
    status, body = _call(port, "POST", "/v1/search", {"text": "a photo", "limit": 1000})
    assert status == 200, body
    return [result["asset_id"] for result in body["results"]]


def _chunks(settings: Settings, parent_id: str) -> list[Job]:
    with read_session(settings) as session:
        return list(session.scalars(select(Job).where(Job.parent_id == parent_id)))


def test_two_workers_and_two_apis_ingest_500_images_once_despite_a_killed_worker(
    cluster: tuple[Cluster, Settings, Path],
) -> None:
    processes, settings, library = cluster
    write_images(library, IMAGES)
    workers = [processes.start_worker("worker-0"), processes.start_worker("worker-1")]
    ports = [processes.start_api("api-0"), processes.start_api("api-1")]
    searchers = [Searcher(port) for port in ports]
    for searcher in searchers:
        searcher.start()

    status, job = _call(ports[0], "POST", "/v1/ingest", {"paths": [str(library)]})
    assert status == 202, job
    parent_id = job["id"]

    # Kill worker 0 in the middle of a chunk: both workers busy (one running chunk each) and some files done.
    def both_busy() -> bool:
        running = [c for c in _chunks(settings, parent_id) if c.status == "running"]
        return len(running) == 2 and all(c.progress > 0 for c in running)

    wait_until(both_busy, 300, "both workers to be inside a chunk")
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(timeout=10)

    status, finished = _call(ports[1], "GET", f"/v1/jobs/{parent_id}?wait=60")
    deadline = time.monotonic() + 600
    while finished["status"] in ("queued", "running") and time.monotonic() < deadline:
        status, finished = _call(ports[1], "GET", f"/v1/jobs/{parent_id}?wait=60")
    for searcher in searchers:
        searcher.stop.set()
        searcher.join(timeout=120)
    assert finished["status"] == "succeeded", finished["error"]
    result = finished["result"]
    assert (result["chunks"], result["chunk_status"]["succeeded"], result["failed"]) == (IMAGES // CHUNK, 10, 0)
    # The killed worker's chunk ran again: files it had committed were skipped the second time, none lost.
    assert result["indexed"] + result["skipped"] == IMAGES and result["failed_chunks"] == []
    assert max(chunk.attempts for chunk in _chunks(settings, parent_id)) >= 2
    status, listed = _call(ports[0], "GET", f"/v1/jobs?parent={parent_id}&limit=100")
    assert status == 200 and len(listed["items"]) == IMAGES // CHUNK
    assert {(job["kind"], job["parent_id"], job["status"]) for job in listed["items"]} == {
        ("ingest_chunk", parent_id, "succeeded")
    }

    with read_session(settings) as session:
        per_hash = session.execute(
            select(Asset.sha256, func.count()).where(Asset.status == "indexed").group_by(Asset.sha256)
        ).all()
        segment_ids = set(session.scalars(select(Segment.id)))
        logged = list(session.scalars(select(ChangeLog.segment_id).where(ChangeLog.op == "add")))
        asset_ids = set(session.scalars(select(Asset.id)))
    assert len(per_hash) == IMAGES and {count for _, count in per_hash} == {1}  # every image exactly once
    assert len(segment_ids) == IMAGES and sorted(logged) == sorted(segment_ids)

    # Both API processes kept running and searching throughout; each now finds every asset.
    assert all(s.searches > 1 and not s.errors for s in searchers), [s.errors[:3] for s in searchers]
    for port in ports:
        found = _found(port)
        assert len(found) == len(set(found)) == IMAGES and set(found) == asset_ids
