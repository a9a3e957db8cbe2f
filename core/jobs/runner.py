"""Run one attempt of a job: claim it, hold a lease with a heartbeat, call its handler, record how it ended.

Every write an attempt makes is fenced by its attempt number (``WHERE attempts = mine AND status = 'running'``):
when the reaper has given the job to another attempt, the old one can no longer change it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.db.engine import get_engine, write_session
from core.db.models import Job, new_uuid, utcnow
from core.jobs.lifecycle import job_finished, notify_finished, settle_parent
from core.jobs.model import (
    META_KEY,
    TERMINAL,
    AwaitChildren,
    JobCanceled,
    JobContext,
    JobFailed,
    RetryableJobError,
    job_meta,
    resolve_handler,
)
from core.jobs.store import lease_until, updated_rows
from core.jobs.transport import dispatch
from core.logs import bind_job
from core.metrics import observe_job
from core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

# Progress is written when it moved this much, or this long after the last write, so a fast loop stays cheap.
_PROGRESS_STEP = 0.01
_PROGRESS_INTERVAL_S = 1.0
_MAX_RETRY_DELAY_S = 60.0


def heartbeat_interval(settings: Settings) -> float:
    """Return the heartbeat period: the setting, but at least three beats per lease."""
    return min(settings.jobs.heartbeat_s, settings.jobs.lease_s / 3)


@dataclass
class _Claim:
    kind: str
    attempt: int
    params: dict[str, Any]
    result: dict[str, Any]
    queue: str


def _claim(job_id: str, settings: Settings, message_id: str | None) -> _Claim | None:
    """Mark the job running under a new attempt number; None when it must not run (done, held, canceled, or
    ``message_id`` is not the job's latest message: a newer one was sent, so this one is a stale duplicate)."""
    ended: Job | None = None
    with write_session(settings) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            logger.warning("job %s: no such job; message dropped", job_id)
            return None
        if job.status in TERMINAL:
            return None  # a duplicate delivery of a finished job: nothing to do (idempotent by job id)
        if job.status == "queued" and message_id and job.celery_id and job.celery_id != message_id:
            logger.info("job %s: message %s was replaced by %s; dropped", job_id, message_id, job.celery_id)
            return None
        now = utcnow()
        lease = job.lease_expires_at
        if job.status == "running" and lease is not None and lease > now:
            return None  # another attempt holds a live lease
        if job.cancel_requested:
            job.status, job.error, job.finished_at, job.lease_expires_at = "canceled", "canceled", now, None
            ended = job
        elif job.attempts >= settings.jobs.max_attempts:
            job.status, job.finished_at, job.lease_expires_at = "failed", now, None
            job.error = f"gave up after {job.attempts} attempts; last: {job.error or 'worker lost'}"
            ended = job
        else:
            job.status = "running"
            job.attempts += 1
            job.lease_expires_at = lease_until(settings)
            job.started_at = job.started_at or now
            queue = str(job_meta(job).get("queue") or "gpu")
            claim = _Claim(job.kind, job.attempts, dict(job.params or {}), dict(job.result or {}), queue)
    if ended is not None:
        job_finished(ended, settings)
        return None
    return claim


class Lease:
    """One attempt's hold on a running job: heartbeat, progress, cancel checks and fenced writes."""

    def __init__(self, job_id: str, attempt: int, settings: Settings) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.settings = settings
        self.lost = False
        self._last_progress = -1.0
        self._last_write = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _mine(self) -> Any:
        return (Job.id == self.job_id, Job.attempts == self.attempt, Job.status == "running")

    def write(self, **values: Any) -> bool:
        """Apply ``values`` to the job if this attempt still holds it; return whether it did."""
        with write_session(self.settings) as session:
            rowcount = updated_rows(session.execute(update(Job).where(*self._mine()).values(**values)))
        if rowcount != 1:
            self.lost = True
        return rowcount == 1

    def renew(self) -> None:
        """Extend the lease (the heartbeat calls this)."""
        try:
            self.write(lease_expires_at=lease_until(self.settings))
        except DBAPIError:
            logger.warning("job %s: lease renewal failed; retrying at the next beat", self.job_id, exc_info=True)

    def progress(self, fraction: float) -> None:
        """Record progress (throttled) and renew the lease with the same write."""
        now = time.monotonic()
        # 1.0 is never written here: the success write records it with the result, one write instead of two.
        if fraction >= 1.0 or (
            fraction - self._last_progress < _PROGRESS_STEP and now - self._last_write < _PROGRESS_INTERVAL_S
        ):
            return
        self._last_progress, self._last_write = fraction, now
        self.write(progress=fraction, lease_expires_at=lease_until(self.settings))

    def checkpoint(self, partial: dict[str, Any]) -> None:
        """Store a partial result for this attempt."""
        self.write(result=partial, lease_expires_at=lease_until(self.settings))

    def should_cancel(self) -> bool:
        """Return True when cancel was requested or this attempt no longer holds the job."""
        if self.lost:
            return True
        # A plain connection, not a session: this runs after every denoising step.
        with get_engine(self.settings).connect() as conn:
            row = conn.execute(
                select(Job.cancel_requested, Job.status, Job.attempts).where(Job.id == self.job_id)
            ).first()
        if row is None or row.status != "running" or row.attempts != self.attempt:
            self.lost = True
            return True
        return bool(row.cancel_requested)

    def start(self) -> None:
        """Start the heartbeat thread."""
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.job_id[:8]}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        interval = heartbeat_interval(self.settings)
        while not self._stop.wait(interval) and not self.lost:
            self.renew()


def is_retryable(exc: BaseException) -> bool:
    """Return True for failures another attempt may not hit: transient I/O, database hiccups and races, GPU memory."""
    if isinstance(exc, RetryableJobError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, IntegrityError):
        return True  # two writers raced to insert the same row; the loser's retry finds it in place
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or type(exc).__name__ == "OperationalError"
    return type(exc).__name__ == "OutOfMemoryError"  # torch.cuda.OutOfMemoryError, without importing torch


def retry_delay(attempt: int) -> float:
    """Return the backoff before retry number ``attempt`` (1 s, 2 s, 4 s, ... at most a minute)."""
    return float(min(_MAX_RETRY_DELAY_S, 2 ** max(0, attempt - 1)))


def execute(job_id: str, settings: Settings | None = None, message_id: str | None = None) -> str | None:
    """Run one attempt of the job if it may run now; return the status it was left in, or None if it did not run.

    ``message_id`` is the broker message that asked for this run, if any (a stale duplicate is dropped).
    """
    with bind_job(job_id):  # every log line of the attempt carries the job id
        return _execute(job_id, settings or get_settings(), message_id)


def _execute(job_id: str, settings: Settings, message_id: str | None) -> str | None:
    claim = _claim(job_id, settings, message_id)
    if claim is None:
        return None
    lease = Lease(job_id, claim.attempt, settings)
    params = {k: v for k, v in claim.params.items() if k != META_KEY}
    ctx = JobContext(
        job_id,
        params,
        settings,
        attempt=claim.attempt,
        result=claim.result,
        on_progress=lease.progress,
        cancel_check=lease.should_cancel,
        on_checkpoint=lease.checkpoint,
    )
    lease.start()
    started = time.perf_counter()
    try:
        status = _run(ctx, claim, lease)
    finally:
        lease.stop()
    elapsed = time.perf_counter() - started
    observe_job(claim.kind, status, elapsed)
    logger.info("%s job attempt %d left it %s after %.2f s", claim.kind, claim.attempt, status or "lost", elapsed)
    if status in TERMINAL:
        notify_finished(job_id, claim.params, settings)
    return status


def _run(ctx: JobContext, claim: _Claim, lease: Lease) -> str | None:
    job_id = ctx.job_id
    try:
        result = resolve_handler(claim.kind)(ctx)
    except AwaitChildren as exc:
        # Detached: running without a lease until its children end (core/jobs/fanout.py settles it). The heartbeat
        # stops first, so it cannot renew the lease after this write.
        lease.stop()
        if not lease.write(result=exc.result, lease_expires_at=None):
            return None
        settle_parent(job_id, ctx.settings)  # its children may all have ended already
        return "waiting"
    except JobCanceled as exc:
        if lease.lost:
            logger.warning("job %s attempt %d: lost its lease; stopped without writing", job_id, claim.attempt)
            return None
        values: dict[str, Any] = {
            "status": "canceled",
            "error": str(exc),
            "finished_at": utcnow(),
            "lease_expires_at": None,
        }
        if exc.result is not None:
            values["result"] = exc.result
        return "canceled" if lease.write(**values) else None
    except Exception as exc:
        return _failed(ctx, claim, lease, exc)
    if not isinstance(result, dict):
        return _failed(ctx, claim, lease, JobFailed(f"handler returned {type(result).__name__}, not a dict"))
    done = lease.write(
        status="succeeded", result=result, progress=1.0, error=None, finished_at=utcnow(), lease_expires_at=None
    )
    if not done:
        logger.warning("job %s attempt %d: lost its lease before finishing; result discarded", job_id, claim.attempt)
        return None
    return "succeeded"


def _failed(ctx: JobContext, claim: _Claim, lease: Lease, exc: Exception) -> str | None:
    settings, job_id = ctx.settings, ctx.job_id
    reason = str(exc) if isinstance(exc, JobFailed) and str(exc) else f"{type(exc).__name__}: {exc}"
    if lease.lost:
        logger.warning("job %s attempt %d: lost its lease, then failed: %s", job_id, claim.attempt, reason)
        return None
    if not isinstance(exc, JobFailed):
        logger.error("job %s attempt %d failed", job_id, claim.attempt, exc_info=exc)
    if is_retryable(exc) and claim.attempt < settings.jobs.max_attempts:
        delay = retry_delay(claim.attempt)
        message_id = new_uuid() if settings.broker_url else None
        note = f"attempt {claim.attempt} failed ({reason}); retrying in {delay:.0f} s"
        due = utcnow() + timedelta(seconds=delay)
        if lease.write(status="queued", error=note, lease_expires_at=due, celery_id=message_id):
            dispatch(job_id, claim.kind, claim.queue, settings, message_id=message_id, countdown=delay)
            return "queued"
        return None
    if claim.attempt > 1:
        reason = f"{reason} (attempt {claim.attempt} of {settings.jobs.max_attempts})"
    return "failed" if lease.write(status="failed", error=reason, finished_at=utcnow(), lease_expires_at=None) else None
