"""The job service every domain uses: submit, inspect, cancel and wait on jobs; the Job table is the truth.

A handler is ``Callable[[JobContext], dict]`` named in HANDLERS and imported lazily, so core never imports a higher
layer at import time. The same handler runs in a Celery worker (``settings.broker_url`` set) or in an in-process
executor (embedded mode). A running job holds a lease renewed by a heartbeat; a reaper requeues jobs whose lease
expired, so a dead worker's job is retried (see core/job_runner.py and core/job_reaper.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.db.engine import read_session, write_session
from core.db.models import Job, new_uuid, utcnow
from core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

# kind -> "module:function"; imported on first use by the process that runs the job.
HANDLERS: dict[str, str] = {
    "generate": "generators.tasks:run_generate_job",
    "ingest": "index.tasks:run_ingest_job",
    "ingest_chunk": "index.tasks:run_ingest_chunk_job",
}
# The queue a kind goes to unless submit() names another: GPU work apart from CPU-bound ingest.
DEFAULT_QUEUES: dict[str, str] = {"generate": "gpu", "ingest": "ingest", "ingest_chunk": "ingest"}
QUEUES = ("gpu", "ingest")
STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# Job.params holds the handler's parameters plus this reserved key for the job machinery (queue, callback, ...).
META_KEY = "_job"
MAX_IDEMPOTENCY_KEY = 255

Handler = Callable[["JobContext"], dict[str, Any]]


class JobRequestError(ValueError):
    """A submit call is invalid (unknown kind or queue, bad idempotency key or callback URL); no job was created."""


class IdempotencyConflict(JobRequestError):
    """The idempotency key was already used for a different request."""


class QueueFull(RuntimeError):
    """Too many jobs of this kind are waiting; ``retry_after_s`` estimates when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class JobDispatchError(RuntimeError):
    """The job could not be handed to the broker; it was recorded as failed."""


class JobNotFound(LookupError):
    """No job has this id."""


class JobCanceled(Exception):
    """Raised by a handler that saw should_cancel(); the job ends ``canceled`` keeping any partial ``result``."""

    def __init__(self, message: str = "canceled", result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


class AwaitChildren(Exception):
    """Raised by core.job_fanout.fan_out(): the job waits for its child jobs, detached (see that module)."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("waiting for child jobs")
        self.result = result


class JobFailed(Exception):
    """Raised by a handler for a failure that retrying cannot fix; the message becomes the job's error."""


class RetryableJobError(Exception):
    """Raised by a handler for a transient failure; the job is retried up to ``jobs.max_attempts``."""


class JobContext:
    """What a handler gets: its job id, parameters, settings, and hooks for progress, cancel and checkpoints.

    ``result`` holds what an earlier attempt checkpointed, so a retried handler can skip work already done.
    Built by the runner; a test may build one with the defaults (no-op hooks) to call a handler directly.
    """

    def __init__(
        self,
        job_id: str,
        params: dict[str, Any],
        settings: Settings,
        *,
        attempt: int = 1,
        result: dict[str, Any] | None = None,
        on_progress: Callable[[float], None] | None = None,
        cancel_check: Callable[[], bool] | None = None,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.job_id = job_id
        self.params = params
        self.settings = settings
        self.attempt = attempt
        self.result: dict[str, Any] = dict(result or {})
        self._on_progress = on_progress
        self._cancel_check = cancel_check
        self._on_checkpoint = on_checkpoint

    def progress(self, fraction: float) -> None:
        """Record progress in [0, 1] (this also renews the job's lease)."""
        if self._on_progress is not None:
            self._on_progress(min(1.0, max(0.0, float(fraction))))

    def should_cancel(self) -> bool:
        """Return True when the job was canceled or this attempt lost its lease; stop at the next step."""
        return self._cancel_check() if self._cancel_check is not None else False

    def checkpoint(self, partial: dict[str, Any]) -> None:
        """Store a partial result now, so a retry after a crash can resume from it."""
        self.result = dict(partial)
        if self._on_checkpoint is not None:
            self._on_checkpoint(self.result)


def resolve_handler(kind: str) -> Handler:
    """Return the handler function registered for ``kind``, importing its module now."""
    import importlib

    target = HANDLERS.get(kind)
    if target is None:
        raise JobRequestError(f"unknown job kind {kind!r}; known: {', '.join(HANDLERS)}")
    module_name, _, function = target.partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), function)
    return handler


# --- reading --------------------------------------------------------------------------------------------------


def get_job(job_id: str, settings: Settings | None = None) -> Job | None:
    """Return the job with this id, or None."""
    with read_session(settings or get_settings()) as session:
        return session.get(Job, job_id)


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


def job_meta(job: Job) -> dict[str, Any]:
    """Return the job machinery's own fields (queue, callback_url, request fingerprint) kept in params."""
    meta = (job.params or {}).get(META_KEY)
    return dict(meta) if isinstance(meta, dict) else {}


def handler_params(job: Job) -> dict[str, Any]:
    """Return the handler's parameters (params without the reserved machinery key)."""
    return {k: v for k, v in (job.params or {}).items() if k != META_KEY}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite hands datetimes back naive; every stored time is UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def job_to_dict(job: Job) -> dict[str, Any]:
    """Return the public JSON shape of a job (CLI ``--json``, REST and agent)."""
    meta = job_meta(job)
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": round(float(job.progress or 0.0), 4),
        "params": handler_params(job),
        "result": job.result or {},
        "error": job.error,
        "queue": meta.get("queue"),
        "parent_id": job.parent_id,
        "attempts": job.attempts,
        "cancel_requested": bool(job.cancel_requested),
        "callback_url": meta.get("callback_url"),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


# --- submitting -----------------------------------------------------------------------------------------------


def _stored_idempotency_key(owner_key_id: str | None, key: str) -> str:
    # Scoped by owner so two API keys choosing the same string never see each other's job; hashed to fit the column.
    return hashlib.sha256(f"{owner_key_id or ''}\x00{key}".encode()).hexdigest()


def _fingerprint(kind: str, request: Any, callback_url: str | None) -> str:
    canonical = json.dumps([kind, request, callback_url], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _existing_for_key(stored_key: str, fingerprint: str, settings: Settings) -> Job | None:
    with read_session(settings) as session:
        job = session.scalars(select(Job).where(Job.idempotency_key == stored_key)).one_or_none()
    if job is not None and job_meta(job).get("fingerprint") != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used for a different request")
    return job


def _retry_after(kind: str, waiting: int, settings: Settings) -> int:
    """Estimate seconds until a slot frees: recent mean run time of this kind, at least 1 s, at most 5 min."""
    with read_session(settings) as session:
        rows = session.execute(
            select(Job.started_at, Job.finished_at)
            .where(Job.kind == kind, Job.status == "succeeded", Job.started_at.is_not(None))
            .order_by(Job.finished_at.desc())
            .limit(20)
        ).all()
    durations = [(end - start).total_seconds() for start, end in rows if start and end]
    mean = sum(durations) / len(durations) if durations else 1.0
    excess = max(1, waiting - settings.jobs.max_queue_depth + 1)
    return int(min(300, max(1, math.ceil(mean * excess / max(1, settings.jobs.embedded_workers)))))


def queue_depth(kind: str, settings: Settings | None = None) -> int:
    """Return how many jobs of ``kind`` are waiting to start."""
    with read_session(settings or get_settings()) as session:
        count = session.scalar(select(func.count()).select_from(Job).where(Job.kind == kind, Job.status == "queued"))
    return int(count or 0)


def submit(
    kind: str,
    params: dict[str, Any],
    *,
    queue: str | None = None,
    owner_key_id: str | None = None,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    fingerprint: Any = None,
    settings: Settings | None = None,
) -> Job:
    """Create a queued job and hand it to a worker; return it (the existing job for a reused idempotency key).

    ``fingerprint`` (JSON-serialisable; default: params and callback_url) identifies the request for idempotency:
    reusing a key with a different fingerprint raises IdempotencyConflict. Raises JobRequestError (bad arguments),
    QueueFull (too many waiting: retry later) or JobDispatchError (broker unreachable, job recorded failed); in
    every error case no runnable job is left behind.
    """
    settings = settings or get_settings()
    if kind not in HANDLERS:
        raise JobRequestError(f"unknown job kind {kind!r}; known: {', '.join(HANDLERS)}")
    queue = queue or DEFAULT_QUEUES.get(kind, "gpu")
    if queue not in QUEUES:
        raise JobRequestError(f"unknown queue {queue!r}; known: {', '.join(QUEUES)}")
    if META_KEY in params:
        raise JobRequestError(f"params may not use the reserved key {META_KEY!r}")
    if callback_url is not None:
        from core.callbacks import InvalidCallbackUrl, validate_callback_url

        try:
            callback_url = validate_callback_url(callback_url, settings)
        except InvalidCallbackUrl as exc:
            raise JobRequestError(str(exc)) from exc

    digest = _fingerprint(kind, params if fingerprint is None else fingerprint, callback_url)
    stored_key: str | None = None
    if idempotency_key is not None:
        if not idempotency_key.strip() or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise JobRequestError(f"idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        stored_key = _stored_idempotency_key(owner_key_id, idempotency_key)
        existing = _existing_for_key(stored_key, digest, settings)
        if existing is not None:
            return existing

    waiting = queue_depth(kind, settings)
    if waiting >= settings.jobs.max_queue_depth:
        raise QueueFull(
            f"{waiting} {kind} jobs are already waiting (limit {settings.jobs.max_queue_depth})",
            _retry_after(kind, waiting, settings),
        )

    meta: dict[str, Any] = {"queue": queue, "fingerprint": digest}
    if callback_url is not None:
        meta["callback_url"] = callback_url
    message_id = new_uuid() if settings.broker_url else None
    job = Job(
        kind=kind,
        status="queued",
        params={**params, META_KEY: meta},
        result={},
        owner_key_id=owner_key_id,
        idempotency_key=stored_key,
        celery_id=message_id,
    )
    try:
        with write_session(settings) as session:
            session.add(job)
    except IntegrityError:
        # Another request with the same idempotency key won the race: theirs is the job.
        if stored_key is None:
            raise
        existing = _existing_for_key(stored_key, digest, settings)
        if existing is None:
            raise
        return existing

    try:
        dispatch(job.id, kind, queue, settings, message_id=message_id)
    except QueueFull:
        _delete(job.id, settings)
        raise
    except Exception as exc:
        reason = f"could not hand the job to the broker: {type(exc).__name__}: {exc}"
        _fail_queued(job.id, reason, settings)
        raise JobDispatchError(reason) from exc
    return job


def dispatch(
    job_id: str,
    kind: str,
    queue: str,
    settings: Settings,
    *,
    message_id: str | None = None,
    countdown: float = 0.0,
) -> None:
    """Hand a queued job to whoever runs jobs here: the Celery broker, or this process's embedded executor."""
    if settings.broker_url:
        from core.queue import send_job

        send_job(job_id, kind, queue, settings, message_id=message_id or new_uuid(), countdown=countdown)
    else:
        from core.job_executor import get_executor

        get_executor(settings).enqueue(job_id, queue, delay_s=countdown)


def start_embedded_executor(settings: Settings | None = None) -> None:
    """In embedded mode, start this process's executor now (it resumes jobs left queued by a dead process)."""
    settings = settings or get_settings()
    if not settings.broker_url:
        from core.job_executor import get_executor

        get_executor(settings)


def _delete(job_id: str, settings: Settings) -> None:
    with write_session(settings) as session:
        job = session.get(Job, job_id)
        if job is not None:
            session.delete(job)


def _fail_queued(job_id: str, reason: str, settings: Settings) -> None:
    with write_session(settings) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is not None and job.status == "queued":
            job.status, job.error, job.finished_at = "failed", reason, utcnow()
            # The client will retry with the same Idempotency-Key: that retry must make a new job, not return this.
            job.idempotency_key = None


# --- canceling and waiting ------------------------------------------------------------------------------------


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
    from core.job_fanout import cancel_children, settle

    cancel_children(job_id, settings)
    if finished_now:
        job_finished(job, settings)
    else:
        settle(job_id, settings)  # a detached parent whose children were all still queued ends now
    return job


_finished = threading.Condition()


def job_finished(job: Job, settings: Settings) -> None:
    """Settle its parent (for a chunk), start delivering its callback, then tell this process's waiters."""
    if job.parent_id is not None:
        from core.job_fanout import settle

        settle(job.parent_id, settings)
    callback_url = job_meta(job).get("callback_url")
    if callback_url:
        from core.callbacks import deliver_in_background

        deliver_in_background(callback_url, job_to_dict(job), settings)
    with _finished:
        _finished.notify_all()


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
