"""Embedded mode: run jobs on threads inside this process, with a bounded queue per job queue and a reaper.

The executor is the embedded transport: it installs itself in core/jobs/transport.py when this module is imported
(core.jobs imports it), so the modules below the runner can dispatch without importing it.
"""

from __future__ import annotations

import logging
import queue
import threading

from sqlalchemy import select

from core.db.engine import read_session
from core.db.models import Job
from core.jobs.model import QUEUES, QueueFull, queue_of
from core.jobs.reaper import Reaper
from core.jobs.runner import execute
from core.jobs.transport import use_embedded
from core.settings import Settings

logger = logging.getLogger(__name__)


class EmbeddedExecutor:
    """Worker threads (``jobs.embedded_workers`` per queue) fed by bounded in-memory queues of job ids."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lanes: dict[str, queue.Queue[str]] = {
            name: queue.Queue(maxsize=settings.jobs.max_queue_depth) for name in QUEUES
        }
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        # Jobs still waiting in memory at stop stay queued in the database; the next executor resumes them.
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(lane,), name=f"job-{name}-{i}", daemon=True)
            for name, lane in self._lanes.items()
            for i in range(settings.jobs.embedded_workers)
        ]
        for thread in self._threads:
            thread.start()
        self._reaper = Reaper(settings).start()

    def send(self, job_id: str, kind: str, queue: str, *, message_id: str | None, countdown: float) -> None:
        """Transport side: run the job on this process's ``queue`` lane (after ``countdown`` seconds)."""
        self.enqueue(job_id, queue, delay_s=countdown)

    def waiting(self, messages: dict[str, str | None]) -> set[str]:
        """Return the jobs among ``messages`` that wait in this executor's lanes."""
        with self._lock:
            return {job_id for job_id in messages if job_id in self._pending}

    def enqueue(self, job_id: str, queue_name: str, delay_s: float = 0.0) -> None:
        """Queue a job id to run here (after ``delay_s``); raise QueueFull when the lane is full."""
        if delay_s > 0:
            timer = threading.Timer(delay_s, self._enqueue_later, args=(job_id, queue_name))
            timer.daemon = True
            timer.start()
            return
        with self._lock:
            if job_id in self._pending:
                return  # already waiting here; a second run would only find it claimed
            try:
                self._lanes[queue_name].put_nowait(job_id)
            except queue.Full:
                raise QueueFull(f"the embedded {queue_name!r} queue is full", retry_after_s=5) from None
            self._pending.add(job_id)

    def _enqueue_later(self, job_id: str, queue_name: str) -> None:
        try:
            self.enqueue(job_id, queue_name)
        except QueueFull:
            logger.warning("job %s: retry could not be queued (queue full); it stays queued", job_id)

    def resume(self) -> int:
        """Queue the jobs a dead process left queued in the database; return how many."""
        with read_session(self.settings) as session:
            rows = session.execute(
                select(Job.id, Job.params).where(Job.status == "queued").order_by(Job.created_at)
            ).all()
        resumed = 0
        for job_id, params in rows:
            try:
                self.enqueue(job_id, queue_of(params))
                resumed += 1
            except QueueFull:
                break
        return resumed

    def _work(self, lane: queue.Queue[str]) -> None:
        while not self._stopping.is_set():
            try:
                job_id = lane.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._lock:
                self._pending.discard(job_id)
            try:
                execute(job_id, self.settings)
            except Exception:
                # The runner records handler failures itself; this is a database outage or a bug in the runner.
                logger.exception("job %s: the embedded executor could not run it", job_id)

    def stop(self) -> None:
        """Stop the reaper and the worker threads once their current job ends."""
        self._stopping.set()
        self._reaper.stop()
        for thread in self._threads:
            thread.join(timeout=60)


_executors: dict[tuple[str, str], EmbeddedExecutor] = {}
_executors_lock = threading.Lock()


def _key(settings: Settings) -> tuple[str, str]:
    return settings.resolved_database_url(), str(settings.resolved_data_dir())


def get_executor(settings: Settings) -> EmbeddedExecutor:
    """Return this process's executor for the settings' database, starting it (and resuming jobs) on first use."""
    key = _key(settings)
    with _executors_lock:
        executor = _executors.get(key)
        if executor is not None:
            return executor
        executor = _executors[key] = EmbeddedExecutor(settings)
    executor.resume()
    return executor


def running_executor(settings: Settings) -> EmbeddedExecutor | None:
    """Return this process's executor for the settings' database if it was started, else None."""
    with _executors_lock:
        return _executors.get(_key(settings))


def stop_executors() -> None:
    """Stop every embedded executor in this process (tests, and a clean shutdown of a server)."""
    with _executors_lock:
        executors = dict(_executors)
    # Stopped while still registered: a reaper pass that requeues meanwhile reaches the stopping executor (the job
    # stays queued in the database for the next one) instead of starting a new executor.
    for executor in executors.values():
        executor.stop()
    with _executors_lock:
        for key, executor in executors.items():
            if _executors.get(key) is executor:
                del _executors[key]


use_embedded(get_executor, running_executor)
