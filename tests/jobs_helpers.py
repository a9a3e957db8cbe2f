"""Helpers for job tests: a shared tiny pipeline folder, polling, and counting rows."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select

from core.db.engine import read_session
from core.db.models import Asset, Job
from core.settings import Settings

T = TypeVar("T")


def shared_tiny_model(base: Path) -> Path:
    """Return a tiny-random pipeline folder under the session's temp dir, built on first use (seconds)."""
    from generators.tiny import build_tiny_pipeline

    return build_tiny_pipeline(base / "jobs-tiny-random")


def link_tiny_model(models: Path, data_dir: Path) -> None:
    """Make ``data_dir`` use an already built tiny-random pipeline (building one takes seconds)."""
    target = data_dir / "models" / "tiny-random"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(models, target_is_directory=True)


def wait_until(probe: Callable[[], T | None], timeout_s: float = 120.0, what: str = "condition") -> T:
    """Return probe()'s first truthy value, polling until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def job_count(settings: Settings) -> int:
    """Return how many jobs exist."""
    with read_session(settings) as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def generated_assets(settings: Settings) -> list[Asset]:
    """Return every generated asset."""
    with read_session(settings) as session:
        return list(session.scalars(select(Asset).where(Asset.source == "generated")))


def wait_for_status(job_id: str, status: str, settings: Settings, timeout_s: float = 120.0) -> Job:
    """Return the job once it is in ``status`` (core.jobs.wait stops at any end; this waits for one state)."""

    def probe() -> Job | None:
        with read_session(settings) as session:
            job = session.get(Job, job_id)
        return job if job is not None and job.status == status else None

    return wait_until(probe, timeout_s, f"job {job_id} to be {status}")


def free_redis_db() -> int:
    """Return an empty Redis database number on 127.0.0.1:6379 (skip the test when Redis is unreachable)."""
    import pytest
    import redis

    candidates = list(range(1, 16))
    random.shuffle(candidates)
    for number in candidates:
        client = redis.Redis(host="127.0.0.1", port=6379, db=number)
        try:
            if client.dbsize() == 0:
                return number
        except redis.ConnectionError as exc:
            pytest.skip(f"Redis not reachable on 127.0.0.1:6379: {exc}")
        finally:
            client.close()
    pytest.skip("no empty Redis database among 1..15")


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, then wait for each (SIGKILL after 20 s)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
