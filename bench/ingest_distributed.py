"""Benchmark distributed ingest with 1 and then 2 `sensorium worker` processes; prints one JSON object.

Production mode on this machine: a fresh PostgreSQL database and an empty Redis database per run, workers on the
``ingest`` queue (concurrency 1, each with cores/workers torch threads), the same library of 640x480 JPEGs. Each
run first ingests a small warm-up library (one chunk per worker) so every worker has loaded its model, then times a
distributed ingest from submit to the job's end (walk, fan-out, chunks, merge). The ratio is 2-worker images/s over
1-worker images/s, both measured by this process on the same machine, in alternating rounds (median reported).

Run: PYTHONPATH=. python bench/ingest.py --distributed [--images 400] [--chunk-size 50] [--rounds 2] [--model ViT-B-32]
Needs PostgreSQL (SENSORIUM_TEST_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1/test) and Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.ingest import make_library
from bench.services import empty_redis_db, postgres_database
from tests.jobs_helpers import stop_processes

REPO = Path(__file__).resolve().parents[1]
WARM_UP_CHUNK = 4


@contextmanager
def _broker() -> Iterator[str]:
    import redis

    number = empty_redis_db()
    try:
        yield f"redis://127.0.0.1:6379/{number}"
    finally:
        client = redis.Redis(host="127.0.0.1", port=6379, db=number)
        client.flushdb()
        client.close()


@contextmanager
def _workers(count: int, env: dict[str, str], logs: Path) -> Iterator[None]:
    processes: list[subprocess.Popen[bytes]] = []
    threads = str(max(1, (os.cpu_count() or 1) // count))
    try:
        for number in range(count):
            log = logs / f"worker-{count}-{number}.log"
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "api.cli", "worker", "--queues", "ingest", "--concurrency", "1"],
                        cwd=REPO,
                        env={**env, "OMP_NUM_THREADS": threads},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            deadline = time.monotonic() + 300
            while b" ready." not in log.read_bytes():
                if processes[-1].poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker did not start:\n{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
        yield
    finally:
        stop_processes(processes)


def _ingest(folder: Path, chunk_size: int, settings: Any) -> tuple[float, dict[str, Any]]:
    """Run one distributed ingest of ``folder``; return its wall seconds and the job's result."""
    from core.jobs import submit, wait

    started = time.perf_counter()
    params = {"paths": [str(folder)], "distributed": True, "chunk_size": chunk_size}
    job = submit("ingest", params, queue="ingest", settings=settings)
    done = wait(job.id, 3600, settings)
    elapsed = time.perf_counter() - started
    if done.status != "succeeded":
        raise SystemExit(f"distributed ingest {done.status}: {done.error}")
    return elapsed, dict(done.result)


def _run(workers: int, library: Path, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    warm_up = root / f"warm-up-{uuid.uuid4().hex[:8]}"
    make_library(warm_up, WARM_UP_CHUNK * workers, first_seed=100_000)
    from core.settings import EncoderSettings, IngestSettings, Settings

    with postgres_database() as database_url, _broker() as broker_url:
        data_dir = root / f"data-{workers}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
        env.update(
            {
                "SENSORIUM_DATA_DIR": str(data_dir),
                "SENSORIUM_DATABASE_URL": database_url,
                "SENSORIUM_BROKER_URL": broker_url,
                "SENSORIUM_ENCODER__MODEL": args.model,
                "SENSORIUM_ENCODER__PRETRAINED": args.pretrained,
                "SENSORIUM_ENCODER__BATCH_SIZE": str(args.batch_size),
                "SENSORIUM_INGEST__ALLOWED_ROOTS": json.dumps([str(root)]),
                "PYTHONPATH": str(REPO),
                "HF_HUB_OFFLINE": "1",
            }
        )
        settings = Settings(
            data_dir=data_dir,
            database_url=database_url,
            broker_url=broker_url,
            encoder=EncoderSettings(model=args.model, pretrained=args.pretrained, batch_size=args.batch_size),
            ingest=IngestSettings(allowed_roots=[root]),
        )
        with _workers(workers, env, root):
            _ingest(warm_up, WARM_UP_CHUNK, settings)  # a chunk per worker: each loads its model before the clock
            load_before = os.getloadavg()
            elapsed, result = _ingest(library, args.chunk_size, settings)
            load_after = os.getloadavg()
    if result.get("indexed") != args.images:
        raise SystemExit(f"expected {args.images} images indexed, got {result}")
    return {
        "workers": workers,
        "seconds": round(elapsed, 2),
        "images_per_s": round(args.images / elapsed, 2),
        "chunks": result.get("chunks"),
        "torch_threads_per_worker": max(1, (os.cpu_count() or 1) // workers),
        "load_avg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--chunk-size", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2, help="alternating 1-worker and 2-worker runs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default="none", help="random weights: the same cost as the pretrained ones")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run 1 then 2 workers and print the report as JSON."""
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-distributed-") as tmp:
        root = Path(tmp)
        make_library(root / "library", args.images)
        # Rounds alternate 1 and 2 workers, so load from other processes on a shared machine hits both alike.
        rounds = [
            (_run(1, root / "library", root, args), _run(2, root / "library", root, args)) for _ in range(args.rounds)
        ]
    ratios = [two["images_per_s"] / one["images_per_s"] for one, two in rounds]
    report = {
        "benchmark": "ingest_distributed",
        "model": args.model,
        "images": args.images,
        "chunk_size": args.chunk_size,
        "rounds": [{"one_worker": one, "two_workers": two} for one, two in rounds],
        "ratio_by_round": [round(r, 3) for r in ratios],
        "ratio_two_over_one": round(statistics.median(ratios), 3),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
