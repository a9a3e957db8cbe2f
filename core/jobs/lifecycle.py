"""What happens when a job ends or is canceled: settle its parent, send its callback, wake this process's waiters.

Also the waiting side: wait() returns once a job has ended, woken at once for jobs that end in this process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from core.db.engine import write_session
from core.db.models import Job, utcnow
from core.jobs.fanout import cancel_children, detached_parents, settle
from core.jobs.model import META_KEY, TERMINAL, JobNotFound, job_meta, job_to_dict
from core.jobs.store import get_job
from core.settings import Settings, get_settings

_finished = threading.Condition()


def job_finished(job: Job, settings: Settings) -> None:
    """Settle its parent (for a chunk), start delivering its callback, then tell this process's waiters."""
    if job.parent_id is not None:
        settle_parent(job.parent_id, settings)
    callback_url = job_meta(job).get("callback_url")
    if callback_url:
        from core.outbox import enqueue

        enqueue(job.id, callback_url, job_to_dict(job), settings)
    with _finished:
        _finished.notify_all()


def settle_parent(parent_id: str, settings: Settings) -> None:
    """Settle a detached parent and, when that ended it, run its own end-of-job steps."""
    ended = settle(parent_id, settings)
    if ended is not None:
        job_finished(ended, settings)


def settle_detached(settings: Settings, limit: int = 100) -> int:
    """Settle every detached parent (the reaper's safety net); return how many were looked at."""
    ids = detached_parents(settings, limit)
    for job_id in ids:
        settle_parent(job_id, settings)
    return len(ids)


def notify_finished(job_id: str, params: dict[str, Any], settings: Settings) -> None:
    """Like job_finished(), given the job's id and params: reads the job only when a callback or parent needs it."""
    meta = params.get(META_KEY) or {}
    if meta.get("callback_url") or meta.get("parent"):
        job = get_job(job_id, settings)
        if job is not None:
            job_finished(job, settings)
        return
    with _finished:
        _finished.notify_all()


def cancel(job_id: str, settings: Settings | None = None) -> Job:
    """Cancel a job: a queued one ends ``canceled`` now, a running one stops at its next step; return the job."""
    settings = settings or get_settings()
    with write_session(settings) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        if job.status in TERMINAL:
            return job
        job.cancel_requested = True
        finished_now = job.status == "queued"
        if finished_now:
            job.status, job.error, job.finished_at = "canceled", "canceled before it started", utcnow()
    cancel_children(job_id, settings)
    if finished_now:
        job_finished(job, settings)
    else:
        settle_parent(job_id, settings)  # a detached parent whose children were all still queued ends now
    return job


def wait(job_id: str, timeout_s: float, settings: Settings | None = None) -> Job:
    """Return the job once it has ended, or as it stands after ``timeout_s`` seconds."""
    settings = settings or get_settings()
    deadline = time.monotonic() + max(0.0, timeout_s)
    pause = 0.005
    while True:
        job = get_job(job_id, settings)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        remaining = deadline - time.monotonic()
        if job.status in TERMINAL or remaining <= 0:
            return job
        # Woken at once when the job ends in this process; polling covers jobs that end in other processes.
        with _finished:
            _finished.wait(min(pause, remaining))
        pause = min(pause * 1.5, 0.1)
