"""Reading and writing the Job table: lookups, listing, queue depths, drain rate, inserts and fenced updates."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.db.engine import read_session, write_session
from core.db.models import Job, utcnow
from core.jobs.model import STATUSES, TERMINAL, IdempotencyConflict, JobRequestError, job_meta
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import CursorResult, Result

MAX_IDEMPOTENCY_KEY = 255
# Recent completions over this window give a queue's drain rate (Retry-After of a refused submit).
DRAIN_WINDOW_S = 300.0
MAX_RETRY_AFTER_S = 600


def updated_rows(result: Result[Any]) -> int:
    """Return how many rows an UPDATE matched (session.execute types its result as a plain Result)."""
    return int(cast("CursorResult[Any]", result).rowcount)


def lease_until(settings: Settings) -> datetime:
    """Return when a lease taken or renewed now expires."""
    return utcnow() + timedelta(seconds=settings.jobs.lease_s)


def get_job(job_id: str, settings: Settings | None = None) -> Job | None:
    """Return the job with this id, or None."""
    with read_session(settings or get_settings()) as session:
        return session.get(Job, job_id)


def ended_jobs(job_ids: list[str], settings: Settings) -> set[str]:
    """Return those of ``job_ids`` that have ended or no longer exist."""
    with read_session(settings) as session:
        rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids))).all()
    running = {job_id for job_id, status in rows if status not in TERMINAL}
    return set(job_ids) - running


def list_jobs(
    *,
    owner_key_id: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    parent_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
    settings: Settings | None = None,
) -> list[Job]:
    """Return jobs newest first, optionally only one owner's, status or kind.

    Only top-level jobs are listed unless ``parent_id`` asks for that job's children (a fanned-out job's chunks).
    """
    if status is not None and status not in STATUSES:
        raise JobRequestError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
    statement = select(Job).order_by(Job.created_at.desc(), Job.id).limit(max(0, limit)).offset(max(0, offset))
    if owner_key_id is not None:
        statement = statement.where(Job.owner_key_id == owner_key_id)
    if status is not None:
        statement = statement.where(Job.status == status)
    if kind is not None:
        statement = statement.where(Job.kind == kind)
    statement = statement.where(Job.parent_id.is_(None) if parent_id is None else Job.parent_id == parent_id)
    with read_session(settings or get_settings()) as session:
        return list(session.scalars(statement))


def queue_depth(kind: str, settings: Settings | None = None) -> int:
    """Return how many jobs of ``kind`` are waiting to start."""
    with read_session(settings or get_settings()) as session:
        count = session.scalar(select(func.count()).select_from(Job).where(Job.kind == kind, Job.status == "queued"))
    return int(count or 0)


def owner_queue_depth(kind: str, owner_key_id: str, settings: Settings) -> int:
    """Return how many top-level jobs of ``kind`` one API key has waiting."""
    with read_session(settings) as session:
        count = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.kind == kind, Job.status == "queued", Job.parent_id.is_(None), Job.owner_key_id == owner_key_id)
        )
    return int(count or 0)


def ahead_of_owner(kind: str, owner_key_id: str, settings: Settings) -> int:
    """Return how many waiting jobs of ``kind`` start before (or with) this key's oldest waiting one."""
    with read_session(settings) as session:
        oldest = session.scalar(
            select(func.min(Job.created_at)).where(
                Job.kind == kind, Job.status == "queued", Job.parent_id.is_(None), Job.owner_key_id == owner_key_id
            )
        )
        if oldest is None:
            return 1
        count = session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.kind == kind, Job.status == "queued", Job.created_at <= oldest)
        )
    return max(1, int(count or 0))


def drain_rate(kind: str, settings: Settings) -> float:
    """Return the jobs of ``kind`` that ended per second over the last DRAIN_WINDOW_S (0.0 when none did)."""
    since = utcnow() - timedelta(seconds=DRAIN_WINDOW_S)
    with read_session(settings) as session:
        rows = session.execute(
            select(func.count(), func.min(Job.finished_at)).where(
                Job.kind == kind, Job.status.in_(("succeeded", "failed")), Job.finished_at >= since
            )
        ).one()
    ended, first = int(rows[0] or 0), rows[1]
    if ended == 0 or first is None:
        return 0.0
    # Over the window, or since the first completion in it when the queue only started draining recently.
    span = max(1.0, min(DRAIN_WINDOW_S, (utcnow() - first).total_seconds()))
    return ended / span


def retry_after(kind: str, jobs_to_drain: int, settings: Settings) -> int:
    """Return the seconds until ``jobs_to_drain`` more jobs of ``kind`` have left the queue, from its drain rate.

    With no completion in the window, the recent mean run time per embedded worker stands in for the rate.
    """
    rate = drain_rate(kind, settings)
    if rate <= 0:
        rate = settings.jobs.embedded_workers / max(0.001, _mean_run_s(kind, settings))
    return int(min(MAX_RETRY_AFTER_S, max(1, math.ceil(max(1, jobs_to_drain) / rate))))


def _mean_run_s(kind: str, settings: Settings) -> float:
    with read_session(settings) as session:
        rows = session.execute(
            select(Job.started_at, Job.finished_at)
            .where(Job.kind == kind, Job.status == "succeeded", Job.started_at.is_not(None))
            .order_by(Job.finished_at.desc())
            .limit(20)
        ).all()
    durations = [(end - start).total_seconds() for start, end in rows if start and end]
    return sum(durations) / len(durations) if durations else 1.0


def stored_idempotency_key(owner_key_id: str | None, key: str) -> str:
    """Return the stored form of a client's idempotency key: scoped by owner, hashed to fit the column."""
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise JobRequestError(f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    # Scoped by owner so two API keys choosing the same string never see each other's job.
    return hashlib.sha256(f"{owner_key_id or ''}\x00{key}".encode()).hexdigest()


def fingerprint(kind: str, request: Any, callback_url: str | None) -> str:
    """Return the digest that identifies a request for idempotency."""
    canonical = json.dumps([kind, request, callback_url], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def existing_for_key(stored_key: str, digest: str, settings: Settings) -> Job | None:
    """Return the job made under this idempotency key (IdempotencyConflict when the request differs), or None."""
    with read_session(settings) as session:
        job = session.scalars(select(Job).where(Job.idempotency_key == stored_key)).one_or_none()
    if job is not None and job_meta(job).get("fingerprint") != digest:
        raise IdempotencyConflict("this Idempotency-Key was already used for a different request")
    return job


def insert(job: Job, settings: Settings) -> Job:
    """Store a new job; for a lost race on its idempotency key return the winner's job instead."""
    try:
        with write_session(settings) as session:
            session.add(job)
    except IntegrityError:
        # Another request with the same idempotency key won the race: theirs is the job.
        if job.idempotency_key is None:
            raise
        existing = existing_for_key(job.idempotency_key, job_meta(job).get("fingerprint", ""), settings)
        if existing is None:
            raise
        return existing
    return job


def delete(job_id: str, settings: Settings) -> None:
    """Delete a job row (a submit whose dispatch was refused)."""
    with write_session(settings) as session:
        job = session.get(Job, job_id)
        if job is not None:
            session.delete(job)


def fail_queued(job_id: str, reason: str, settings: Settings) -> None:
    """Record a queued job as failed with ``reason`` (it could not be handed to a worker)."""
    with write_session(settings) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is not None and job.status == "queued":
            job.status, job.error, job.finished_at = "failed", reason, utcnow()
            # The client will retry with the same Idempotency-Key: that retry must make a new job, not return this.
            job.idempotency_key = None
