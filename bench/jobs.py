"""Benchmark job overhead and throughput with the tiny-random generator and the tiny encoder.

Overhead per job = submit-to-succeeded latency (Job.created_at to Job.finished_at) minus the pipeline's own time
and minus the output's embedding time; measured one job at a time so queueing does not count. Throughput = jobs
per second for a burst submitted at once. Modes: embedded (SQLite, in-process executor) and Redis (PostgreSQL,
a real ``sensorium worker`` process).

Run: PYTHONPATH=. python bench/jobs.py [--mode both|embedded|redis] [--sequential 100] [--burst 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.services import empty_redis_db, postgres_database

REPO = Path(__file__).resolve().parents[1]
TINY_ENCODER_MODEL, TINY_ENCODER_WEIGHTS = "tiny-clip", "none"


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def embed_seconds(settings: Any) -> float:
    """Return the median time the configured encoder takes to embed one 64x64 output, in this process."""
    from PIL import Image

    from index.encoders import get_encoder

    encoder = get_encoder(settings.encoder)
    image = Image.new("RGB", (64, 64), (120, 40, 200))
    encoder.encode_images([image])
    samples = []
    for _ in range(30):
        started = time.perf_counter()
        encoder.encode_images([image])
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _seconds(start: datetime, end: datetime) -> float:
    # SQLite returns naive datetimes; every stored time is UTC.
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    return (end - start).total_seconds()


def measure(settings: Any, sequential: int, burst: int) -> dict[str, Any]:
    """Run warm-up, ``sequential`` one-at-a-time jobs and a burst of ``burst`` jobs; return the figures."""
    from core.jobs import wait
    from generators.service import submit_generation

    def run_one(seed: int) -> Any:
        job = submit_generation({"generator": "tiny-random", "prompt": "a red cube", "seed": seed}, settings=settings)
        done = wait(job.id, 600, settings)
        if done.status != "succeeded":
            raise RuntimeError(f"job {done.id} {done.status}: {done.error}")
        return done

    for seed in range(3):  # pipeline build and load, encoder load, first queries
        run_one(10_000_000 + seed)
    embed_s = embed_seconds(settings)  # after warm-up: a worker still starting would slow it down

    latency, overhead, pipeline, store, wall = [], [], [], [], []
    for seed in range(sequential):
        started = time.perf_counter()
        done = run_one(seed)
        wall.append(time.perf_counter() - started)
        total = _seconds(done.created_at, done.finished_at or done.created_at)
        timings = done.result["timings"]
        latency.append(total)
        pipeline.append(timings["pipeline_s"])
        store.append(timings["store_s"])
        overhead.append(total - timings["pipeline_s"] - embed_s)

    started_burst = time.perf_counter()
    jobs = [
        submit_generation({"generator": "tiny-random", "prompt": "burst", "seed": 20_000_000 + i}, settings=settings)
        for i in range(burst)
    ]
    submitted_s = time.perf_counter() - started_burst
    finished = [wait(job.id, 1200, settings) for job in jobs]
    failed = [job.id for job in finished if job.status != "succeeded"]
    span = max(_seconds(jobs[0].created_at, job.finished_at or job.created_at) for job in finished)

    def ms(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 1)

    return {
        "overhead_ms": {"p50": ms(overhead, 50), "p99": ms(overhead, 99)},
        "latency_ms": {"p50": ms(latency, 50), "p99": ms(latency, 99)},
        "wall_submit_to_wait_return_ms": {"p50": ms(wall, 50), "p99": ms(wall, 99)},
        "pipeline_ms": {"p50": ms(pipeline, 50), "p99": ms(pipeline, 99)},
        "store_ms (decode+thumbnail+embed+write)": {"p50": ms(store, 50), "p99": ms(store, 99)},
        "embed_ms_subtracted": round(embed_s * 1000, 2),
        "burst": {
            "jobs": burst,
            "failed": len(failed),
            "submit_s": round(submitted_s, 2),
            "seconds": round(span, 2),
            "jobs_per_s": round(burst / span, 2),
        },
    }


def _settings(data_dir: Path, **overrides: Any) -> Any:
    from core.settings import EncoderSettings, JobSettings, Settings

    jobs = JobSettings(max_queue_depth=10_000, embedded_workers=overrides.pop("workers", 1))
    return Settings(
        data_dir=data_dir,
        encoder=EncoderSettings(model=TINY_ENCODER_MODEL, pretrained=TINY_ENCODER_WEIGHTS),
        jobs=jobs,
        **overrides,
    )


def run_embedded(root: Path, sequential: int, burst: int, workers: int) -> dict[str, Any]:
    """Embedded mode: SQLite in the data dir, in-process executor."""
    from core.jobs import stop_executors

    settings = _settings(root / "embedded", workers=workers)
    try:
        return {
            "mode": "embedded",
            "database": "sqlite",
            **measure(settings, sequential, burst),
        }
    finally:
        stop_executors()


def run_redis(root: Path, sequential: int, burst: int, workers: int) -> dict[str, Any]:
    """Production mode: PostgreSQL, Redis broker, one ``sensorium worker`` process with ``workers`` threads."""
    import redis

    redis_db = empty_redis_db()
    broker = f"redis://127.0.0.1:6379/{redis_db}"
    data_dir = root / "redis"
    with postgres_database() as database_url:
        settings = _settings(data_dir, database_url=database_url, broker_url=broker)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
        env.update(
            {
                "SENSORIUM_DATA_DIR": str(data_dir),
                "SENSORIUM_DATABASE_URL": database_url,
                "SENSORIUM_BROKER_URL": broker,
                "SENSORIUM_ENCODER__MODEL": TINY_ENCODER_MODEL,
                "SENSORIUM_ENCODER__PRETRAINED": TINY_ENCODER_WEIGHTS,
                "SENSORIUM_JOBS__MAX_QUEUE_DEPTH": "10000",
                "PYTHONPATH": str(REPO),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            }
        )
        log = (root / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--queues", "gpu", "--concurrency", str(workers)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            figures = measure(settings, sequential, burst)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            log.close()
            client = redis.Redis(host="127.0.0.1", port=6379, db=redis_db)
            client.flushdb()
            client.close()
    return {"mode": "redis", "database": "postgresql", "worker_threads": workers, **figures}


def main() -> None:
    """Run the chosen modes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("both", "embedded", "redis"), default="both")
    parser.add_argument("--sequential", type=int, default=100, help="one-at-a-time jobs for the overhead figures")
    parser.add_argument("--burst", type=int, default=200, help="jobs submitted at once for the throughput figure")
    parser.add_argument("--workers", type=int, default=1, help="worker threads (embedded executor and worker)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import torch

    # On a shared CPU, OpenMP threads spinning against other processes make the tiny pipeline many times slower.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "torch_threads": torch.get_num_threads(),
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.mode in ("both", "embedded"):
            report["results"].append(run_embedded(root, args.sequential, args.burst, args.workers))
        if args.mode in ("both", "redis"):
            report["results"].append(run_redis(root, args.sequential, args.burst, args.workers))
    if args.json:
        print(json.dumps(report))
        return
    print(f"machine: {report['machine']}, torch threads {report['torch_threads']}")
    for result in report["results"]:
        print(f"\n[{result['mode']} / {result['database']}]")
        for key, value in result.items():
            if key not in ("mode", "database"):
                print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
