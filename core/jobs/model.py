"""What a job is, with no I/O: kinds and their handlers, statuses, the reserved params key, errors, JobContext.

The first module of the jobs core (model -> store -> transport -> fanout -> lifecycle -> runner -> reaper ->
embedded/worker -> service); each module imports only the ones before it.

A handler is ``Callable[[JobContext], dict]`` named in HANDLERS as ``"module:function"`` and imported on first use
by the process that runs the job, so core never imports a higher layer at import time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.db.models import Job
    from core.settings import Settings

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

Handler = Callable[["JobContext"], dict[str, Any]]


class JobRequestError(ValueError):
    """A submit call is invalid (unknown kind or queue, bad idempotency key or callback URL); no job was created."""


class IdempotencyConflict(JobRequestError):
    """The idempotency key was already used for a different request."""


class QueueFull(RuntimeError):
    """Too many jobs are waiting (of this kind, or of this key); ``retry_after_s`` estimates when to try again."""

    def __init__(self, message: str, retry_after_s: int, *, per_key: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.per_key = per_key


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
    """Raised by core.jobs.fanout.fan_out(): the job waits for its child jobs, detached (see that module)."""

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


def require_kind(kind: str) -> str:
    """Return the ``module:function`` target of ``kind``'s handler, or raise JobRequestError for an unknown kind."""
    target = HANDLERS.get(kind)
    if target is None:
        raise JobRequestError(f"unknown job kind {kind!r}; known: {', '.join(HANDLERS)}")
    return target


def resolve_handler(kind: str) -> Handler:
    """Return the handler function registered for ``kind``, importing its module now (which also runs the
    module's registrations, such as its result-merge hook)."""
    module_name, _, function = require_kind(kind).partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), function)
    return handler


def job_meta(job: Job) -> dict[str, Any]:
    """Return the job machinery's own fields (queue, callback_url, request fingerprint) kept in params."""
    return meta_of(job.params)


def meta_of(params: dict[str, Any] | None) -> dict[str, Any]:
    """Return the machinery's fields of a params dict (empty when absent)."""
    meta = (params or {}).get(META_KEY)
    return dict(meta) if isinstance(meta, dict) else {}


def queue_of(params: dict[str, Any] | None) -> str:
    """Return the queue a job's params name (``gpu`` when none)."""
    return str(meta_of(params).get("queue") or "gpu")


def handler_params(job: Job) -> dict[str, Any]:
    """Return the handler's parameters (params without the reserved machinery key)."""
    return {k: v for k, v in (job.params or {}).items() if k != META_KEY}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None  # aware: the UTC column type


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
