"""Jobs: submit, inspect, cancel and wait on long-running work; the Job table is the truth.

The package's modules depend only on the ones before them: model -> store -> transport (embedded or Celery,
chosen at start) -> fanout -> lifecycle -> runner -> reaper -> embedded / worker -> service. Callers use the names
below; nothing here imports index, generators, agent or api (handlers are named as strings and imported lazily).
"""

from core.jobs.embedded import stop_executors
from core.jobs.fanout import ChildOutcome, MergeHook, child_id, fan_out, register_merge, sum_into
from core.jobs.lifecycle import cancel, job_finished, notify_finished, settle_detached, wait
from core.jobs.model import (
    DEFAULT_QUEUES,
    HANDLERS,
    META_KEY,
    QUEUES,
    STATUSES,
    TERMINAL,
    AwaitChildren,
    Handler,
    IdempotencyConflict,
    JobCanceled,
    JobContext,
    JobDispatchError,
    JobFailed,
    JobNotFound,
    JobRequestError,
    QueueFull,
    RetryableJobError,
    handler_params,
    job_meta,
    job_to_dict,
    resolve_handler,
)
from core.jobs.service import check_room, start_embedded_executor, submit
from core.jobs.store import MAX_IDEMPOTENCY_KEY, get_job, list_jobs, queue_depth
from core.jobs.transport import dispatch
from core.jobs.worker import run_worker

__all__ = [
    "DEFAULT_QUEUES",
    "HANDLERS",
    "MAX_IDEMPOTENCY_KEY",
    "META_KEY",
    "QUEUES",
    "STATUSES",
    "TERMINAL",
    "AwaitChildren",
    "ChildOutcome",
    "Handler",
    "IdempotencyConflict",
    "JobCanceled",
    "JobContext",
    "JobDispatchError",
    "JobFailed",
    "JobNotFound",
    "JobRequestError",
    "MergeHook",
    "QueueFull",
    "RetryableJobError",
    "cancel",
    "check_room",
    "child_id",
    "dispatch",
    "fan_out",
    "get_job",
    "handler_params",
    "job_finished",
    "job_meta",
    "job_to_dict",
    "list_jobs",
    "notify_finished",
    "queue_depth",
    "register_merge",
    "resolve_handler",
    "run_worker",
    "settle_detached",
    "start_embedded_executor",
    "stop_executors",
    "submit",
    "sum_into",
    "wait",
]
