"""Jobs on real Redis and real ``sensorium worker`` processes (PostgreSQL): many jobs at once, reproducible pixels,
cancel on a worker, and a worker killed mid-job whose job a new worker finishes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.db.engine import dispose_engines, read_session
from core.db.models import Asset
from core.jobs import JobDispatchError, cancel, get_job, job_to_dict, wait
from core.settings import JobSettings, Settings
from generators.params import ResolvedParams
from generators.pipelines import run_generation
from generators.registry import get_generator
from generators.service import submit_generation
from index.search import SearchRequest, search
from tests.conftest import TINY_ENCODER, TINY_ENV, _postgres_database
from tests.jobs_helpers import (
    free_redis_db,
    generated_assets,
    link_tiny_model,
    shared_tiny_model,
    stop_processes,
    wait_until,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TINY = "tiny-random"
LEASE_S = 4.0


class Cluster:
    """A PostgreSQL database, a Redis database and the worker processes that serve them."""

    def __init__(self, settings: Settings, env: dict[str, str], logs: Path) -> None:
        self.settings = settings
        self.env = env
        self.logs = logs
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start ``sensorium worker`` and return it once it consumes."""
        log = self.logs / f"worker-{len(self.workers)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", "--queues", "gpu", "--concurrency", "2"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(process)
        wait_until(lambda: b" ready." in log.read_bytes() or process.poll() is not None, 180, "the worker to start")
        assert process.poll() is None, log.read_text(errors="replace")
        return process

    def stop(self) -> None:
        """Stop every worker this cluster started."""
        stop_processes(self.workers)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One PostgreSQL database, Redis database and worker for the module (a worker takes seconds to start)."""
    import redis

    root = tmp_path_factory.mktemp("cluster")
    redis_db = free_redis_db()
    broker = f"redis://127.0.0.1:6379/{redis_db}"
    databases = _postgres_database()
    database_url = next(databases)
    settings = Settings(
        data_dir=root / "data",
        database_url=database_url,
        broker_url=broker,
        encoder=TINY_ENCODER,
        jobs=JobSettings(lease_s=LEASE_S, heartbeat_s=0.5),
    )
    link_tiny_model(shared_tiny_model(tmp_path_factory.getbasetemp()), settings.data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    env.update(TINY_ENV)
    env.update(
        {
            "SENSORIUM_DATA_DIR": str(settings.data_dir),
            "SENSORIUM_DATABASE_URL": database_url,
            "SENSORIUM_BROKER_URL": broker,
            "SENSORIUM_JOBS__LEASE_S": str(LEASE_S),
            "SENSORIUM_JOBS__HEARTBEAT_S": "0.5",
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            # Several engineers share two cores: OpenMP threads spinning against each other slow torch 50x.
            "OMP_NUM_THREADS": "1",
        }
    )
    running = Cluster(settings, env, root)
    running.start_worker()
    try:
        yield running
    finally:
        running.stop()
        client = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
        client.flushdb()
        client.close()
        from index.service import forget_live_indexes

        forget_live_indexes()
        dispose_engines()
        next(databases, None)


def _png(asset_id: str, settings: Settings) -> bytes:
    from core.blobs import BlobStore

    with read_session(settings) as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None and asset.blob_key
    return BlobStore(settings.resolved_data_dir()).path(asset.blob_key).read_bytes()


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=300
    )


def test_fifty_jobs_at_once_each_store_one_findable_asset(cluster: Cluster) -> None:
    settings = cluster.settings
    before = {asset.id for asset in generated_assets(settings)}
    jobs = [
        submit_generation({"generator": TINY, "prompt": f"cube {i}", "seed": 1000 + i, "steps": 1}, settings=settings)
        for i in range(50)
    ]
    finished = [wait(job.id, 300, settings) for job in jobs]
    assert [job.status for job in finished] == ["succeeded"] * 50, [job.error for job in finished if job.error]

    by_job = {job.id: job.result["asset_ids"] for job in finished}
    assert all(len(ids) == 1 for ids in by_job.values())
    new_assets = [asset for asset in generated_assets(settings) if asset.id not in before]
    assert len(new_assets) == 50  # exactly one asset per job, none twice
    assert {asset.meta["job_id"]: [asset.id] for asset in new_assets} == by_job
    assert all(
        asset.status == "indexed" and asset.meta["seed"] == 1000 + int(asset.meta["prompt"][5:]) for asset in new_assets
    )

    # Findable through the CLI: "more like" one output lists every other output of this batch.
    first, *others = [ids[0] for ids in by_job.values()]
    found = _cli(cluster, "search", "--like", first, "-k", "100", "--json")
    assert found.returncode == 0, found.stderr
    listed = {result["asset_id"] for result in json.loads(found.stdout)["results"]}
    assert set(others) <= listed and first not in listed
    for asset_id in (first, *others):
        top = search(SearchRequest(image=_png(asset_id, settings), limit=1), settings)[0]
        assert top.asset_id == asset_id and top.score is not None and top.score > 0.99


def test_same_seed_gives_the_same_pixels_in_any_process(cluster: Cluster) -> None:
    settings = cluster.settings
    body = {"generator": TINY, "prompt": "a red cube", "seed": 77, "steps": 3}
    first = wait(submit_generation(body, settings=settings).id, 120, settings)
    second = wait(submit_generation(body, settings=settings).id, 120, settings)
    assert first.status == second.status == "succeeded"
    assert first.result["asset_ids"] == second.result["asset_ids"]  # identical bytes: the same asset

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        params = ResolvedParams.model_validate({k: v for k, v in first.params.items() if k != "_job"})
        local = run_generation(get_generator(TINY), params, settings.resolved_data_dir())[0].image
    finally:
        torch.set_num_threads(threads)
    stored = Image.open(io.BytesIO(_png(first.result["asset_ids"][0], settings)))
    assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(local))


def test_cancel_stops_a_running_job_on_a_worker_within_one_step(cluster: Cluster) -> None:
    settings = cluster.settings
    steps = 50
    job = submit_generation({"generator": TINY, "prompt": "slow", "steps": steps, "seed": 3}, settings=settings)

    def steps_done() -> int:
        current = get_job(job.id, settings)
        return round(current.progress * steps) if current else 0

    wait_until(lambda: steps_done() >= 2, 120, "two steps")
    cancel(job.id, settings)
    at_cancel = steps_done()
    stopped = wait(job.id, 60, settings)
    assert stopped.status == "canceled", job_to_dict(stopped)
    stopped_after = int((stopped.error or "").rsplit("after ", 1)[1].split()[0])
    assert stopped_after <= at_cancel + 1 < steps


def test_killed_worker_job_is_finished_by_a_new_worker_with_one_asset(cluster: Cluster) -> None:
    settings = cluster.settings
    steps = 30
    job = submit_generation({"generator": TINY, "prompt": "survivor", "steps": steps, "seed": 9}, settings=settings)
    wait_until(lambda: (current := get_job(job.id, settings)) and current.progress * steps >= 2, 120, "the job to run")
    for worker in cluster.workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    killed_at = time.monotonic()
    assert get_job(job.id, settings).status == "running"  # type: ignore[union-attr]

    cluster.start_worker()
    done = wait(job.id, 180, settings)
    assert done.status == "succeeded", job_to_dict(done)
    assert done.attempts >= 2 and time.monotonic() - killed_at > LEASE_S * 0.5
    assets = [asset for asset in generated_assets(settings) if asset.meta.get("job_id") == job.id]
    assert [asset.id for asset in assets] == done.result["asset_ids"]


def test_unreachable_broker_fails_the_job_at_once(cluster: Cluster) -> None:
    settings = cluster.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with pytest.raises(JobDispatchError, match="broker"):
        submit_generation({"generator": TINY, "prompt": "x"}, settings=settings)
    from core.jobs import list_jobs

    (failed,) = list_jobs(status="failed", settings=settings)
    assert "could not hand the job to the broker" in (failed.error or "")
