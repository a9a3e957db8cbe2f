"""The reaper: requeue running jobs whose lease expired (their worker died), or fail them after max_attempts.

It also sends again queued jobs that nobody claimed a lease after their message was due (the message was lost:
a broker that lost it, or a delayed retry held in the memory of a worker that died), and settles detached fan-out
parents whose children have ended (core/jobs/fanout.py) and starts senders for webhook deliveries left by a dead
process (core/outbox.py), as safety nets.

It runs in every Celery worker and in the embedded executor. Several reapers may race; each change is a
conditional update on the job's attempt number and lease (or due time), so exactly one of them acts on a job.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from core.db.engine import read_session, write_session
from core.db.models import Job, new_uuid, utcnow
from core.jobs.lifecycle import job_finished, settle_detached
from core.jobs.model import queue_of
from core.jobs.store import get_job, updated_rows
from core.jobs.transport import dispatch, waiting
from core.outbox import pump
from core.settings import Settings

logger = logging.getLogger(__name__)

_BATCH = 100


def reap_interval(settings: Settings) -> float:
    """Return how often a reaper looks: a quarter of the lease, between 0.5 s and 15 s."""
    return min(15.0, max(0.5, settings.jobs.lease_s / 4))


def _when(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "?"


def reap_expired(settings: Settings) -> list[str]:
    """Requeue (or fail, past max_attempts) every running job whose lease expired; return the ids acted on."""
    now = utcnow()
    with read_session(settings) as session:
        expired = session.execute(
            select(Job.id, Job.kind, Job.attempts, Job.lease_expires_at, Job.params)
            .where(Job.status == "running", Job.lease_expires_at < now)
            .limit(_BATCH)
        ).all()
    acted: list[str] = []
    for job_id, kind, attempts, lease, params in expired:
        give_up = attempts >= settings.jobs.max_attempts
        reason = f"worker lost: attempt {attempts} stopped renewing its lease (expired {_when(lease)})"
        message_id = new_uuid() if settings.broker_url and not give_up else None
        # A requeued job is due now: if its new message is lost too, redispatch_unclaimed() sends another.
        values = (
            {"status": "failed", "error": f"{reason}; gave up after {attempts} attempts", "finished_at": now}
            if give_up
            else {"status": "queued", "error": f"{reason}; requeued", "celery_id": message_id}
        )
        with write_session(settings) as session:
            won = updated_rows(
                session.execute(
                    update(Job)
                    .where(
                        Job.id == job_id, Job.status == "running", Job.attempts == attempts, Job.lease_expires_at < now
                    )
                    .values(lease_expires_at=None if give_up else now, **values)
                )
            )
        if won != 1:
            continue  # another reaper acted first, or the worker renewed just in time
        acted.append(job_id)
        logger.warning("job %s: %s; %s", job_id, reason, "failed" if give_up else "requeued")
        if give_up:
            job = get_job(job_id, settings)
            if job is not None:
                job_finished(job, settings)
        else:
            dispatch(job_id, kind, queue_of(params), settings, message_id=message_id)
    return acted


def redispatch_unclaimed(settings: Settings) -> list[str]:
    """Send again every queued job whose message was due a lease ago and that no worker claimed since.

    A queued job is due when it was created, requeued or its retry's delay ended (``lease_expires_at`` holds that
    time, else ``created_at``). A message still waiting in the broker's queue is left alone (the job is only
    behind others); one that is nowhere was lost: with its broker, or in the memory of the worker that took it
    (a delayed retry; Redis would redeliver it only after an hour).
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.jobs.lease_s)
    due_at = func.coalesce(Job.lease_expires_at, Job.created_at)
    with read_session(settings) as session:
        unclaimed = session.execute(
            select(Job.id, Job.kind, Job.lease_expires_at, Job.created_at, Job.params, Job.celery_id)
            .where(Job.status == "queued", due_at < cutoff)
            .order_by(due_at)
            .limit(_BATCH)
        ).all()
    if not unclaimed:
        return []
    still_waiting = waiting(settings, {row.id: row.celery_id for row in unclaimed})
    sent: list[str] = []
    for job_id, kind, due, created, params, _ in unclaimed:
        if job_id in still_waiting:
            continue
        message_id = new_uuid() if settings.broker_url else None
        fence = Job.lease_expires_at == due if due is not None else Job.lease_expires_at.is_(None)
        with write_session(settings) as session:
            # A new due time: should this message be lost too, the next pass a lease from now sends another.
            won = updated_rows(
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "queued", fence)
                    .values(lease_expires_at=now, celery_id=message_id)
                )
            )
        if won != 1:
            continue  # claimed meanwhile, or another reaper sent it
        logger.warning("job %s: due since %s and nobody claimed it; sent again", job_id, _when(due or created))
        dispatch(job_id, kind, queue_of(params), settings, message_id=message_id)
        sent.append(job_id)
    return sent


class Reaper:
    """A daemon thread that calls reap_expired() now and then every reap_interval()."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-reaper", daemon=True)

    def start(self) -> Reaper:
        """Start the thread and return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (it finishes its current pass)."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        interval = reap_interval(self.settings)
        while True:
            try:
                reap_expired(self.settings)
                redispatch_unclaimed(self.settings)
                settle_detached(self.settings)
                pump(self.settings)  # callbacks whose process died while sending them
            except Exception:
                # A database or broker hiccup must not end the reaper: the next pass tries again.
                logger.exception("reaper pass failed")
            if self._stop.wait(interval):
                return
