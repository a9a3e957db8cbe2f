"""The job service every domain uses: submit a job, and start this process's embedded executor.

The last module of the jobs core (model -> store -> transport -> fanout -> lifecycle -> runner -> reaper ->
embedded/worker -> service). The same handler runs in a Celery worker (``settings.broker_url`` set) or in an
in-process executor (embedded mode). A running job holds a lease renewed by a heartbeat; a reaper requeues jobs
whose lease expired, so a dead worker's job is retried (core/jobs/runner.py and core/jobs/reaper.py).
"""

from __future__ import annotations

from typing import Any

from core.db.models import Job, new_uuid
from core.jobs.embedded import get_executor
from core.jobs.model import (
    DEFAULT_QUEUES,
    META_KEY,
    QUEUES,
    JobDispatchError,
    JobRequestError,
    QueueFull,
    require_kind,
)
from core.jobs.store import (
    ahead_of_owner,
    delete,
    existing_for_key,
    fail_queued,
    insert,
    owner_queue_depth,
    queue_depth,
    retry_after,
    stored_idempotency_key,
)
from core.jobs.store import fingerprint as request_digest
from core.jobs.transport import dispatch
from core.settings import Settings, get_settings


def _check_callback(callback_url: str, settings: Settings) -> str:
    from core.callbacks import InvalidCallbackUrl, validate_callback_url

    try:
        return validate_callback_url(callback_url, settings)
    except InvalidCallbackUrl as exc:
        raise JobRequestError(str(exc)) from exc


def check_room(kind: str, owner_key_id: str | None, settings: Settings) -> None:
    """Raise QueueFull when this API key already has its share of the waiting queue, or the queue is full.

    Each API key may have ``jobs.max_queued_per_key`` jobs of a kind waiting, so one key cannot fill the queue
    that ``jobs.max_queue_depth`` bounds for everyone (jobs without a key, the operator's CLI, have no share).
    Retry-After comes from the queue's drain rate: how long until the key's oldest waiting job (or the queue's
    excess) has started.
    """
    limits = settings.jobs
    if owner_key_id is not None:
        own = owner_queue_depth(kind, owner_key_id, settings)
        share = min(limits.max_queued_per_key, limits.max_queue_depth)
        if own >= share:
            raise QueueFull(
                f"this API key already has {own} {kind} jobs waiting (its share of the queue: {share})",
                retry_after(kind, ahead_of_owner(kind, owner_key_id, settings), settings),
                per_key=True,
            )
    waiting = queue_depth(kind, settings)
    if waiting >= limits.max_queue_depth:
        raise QueueFull(
            f"{waiting} {kind} jobs are already waiting (limit {limits.max_queue_depth})",
            retry_after(kind, waiting - limits.max_queue_depth + 1, settings),
        )


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
    require_kind(kind)
    queue = queue or DEFAULT_QUEUES.get(kind, "gpu")
    if queue not in QUEUES:
        raise JobRequestError(f"unknown queue {queue!r}; known: {', '.join(QUEUES)}")
    if META_KEY in params:
        raise JobRequestError(f"params may not use the reserved key {META_KEY!r}")
    if callback_url is not None:
        callback_url = _check_callback(callback_url, settings)

    digest = request_digest(kind, params if fingerprint is None else fingerprint, callback_url)
    stored_key: str | None = None
    if idempotency_key is not None:
        stored_key = stored_idempotency_key(owner_key_id, idempotency_key)
        existing = existing_for_key(stored_key, digest, settings)
        if existing is not None:
            return existing

    check_room(kind, owner_key_id, settings)

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
    stored = insert(job, settings)
    if stored is not job:
        return stored  # a concurrent request with the same idempotency key made it first

    try:
        dispatch(job.id, kind, queue, settings, message_id=message_id)
    except QueueFull:
        delete(job.id, settings)
        raise
    except Exception as exc:
        reason = f"could not hand the job to the broker: {type(exc).__name__}: {exc}"
        fail_queued(job.id, reason, settings)
        raise JobDispatchError(reason) from exc
    return job


def start_embedded_executor(settings: Settings | None = None) -> None:
    """In embedded mode, start this process's executor now (it resumes jobs left queued by a dead process)."""
    settings = settings or get_settings()
    if not settings.broker_url:
        get_executor(settings)
