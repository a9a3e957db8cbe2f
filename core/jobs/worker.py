"""A Celery worker process: one task per job kind runs core/jobs/runner.execute, and a reaper thread runs beside it.

The app itself (queues, late acks, prefetch 1) is built in core/jobs/transport.py; a domain adds a job kind with
one HANDLERS line and no Celery code.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from core.jobs.model import HANDLERS, QUEUES
from core.jobs.reaper import Reaper
from core.jobs.runner import execute
from core.jobs.transport import get_celery_app, task_name
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery, Task

logger = logging.getLogger(__name__)


def _job_task(task: Task, job_id: str) -> None:
    # The runner records every outcome in the Job table; the task never raises, so its message is always acked.
    try:
        execute(job_id, get_settings(), message_id=task.request.id)
    except Exception:
        logger.exception("job %s: the runner failed; the reaper will retry it when its lease expires", job_id)


def register_tasks(app: Celery) -> None:
    """Register the task that runs each job kind on ``app``."""
    for kind in HANDLERS:
        app.task(name=task_name(kind), ignore_result=True, acks_late=True, bind=True)(_job_task)


def run_worker(queues: list[str], concurrency: int, settings: Settings | None = None) -> None:
    """Run a Celery worker in this process (threads pool) with a reaper thread, until it is stopped."""
    from celery import signals

    settings = settings or get_settings()
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown or not queues:
        raise ValueError(f"unknown queue {', '.join(unknown) or '(none)'}; known: {', '.join(QUEUES)}")
    app = get_celery_app(settings)
    register_tasks(app)
    reaper = Reaper(settings)

    def on_ready(**_: Any) -> None:
        _preload_handlers()
        reaper.start()

    def on_shutdown(**_: Any) -> None:
        reaper.stop()

    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    # Threads, not prefork: a pipeline loads once per process and is shared; CUDA does not survive fork.
    app.worker_main(
        [
            "worker",
            f"--queues={','.join(queues)}",
            f"--concurrency={concurrency}",
            "--pool=threads",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=sensorium-{uuid.uuid4().hex[:8]}@%h",
        ]
    )


def _preload_handlers() -> None:
    # Import handler modules before the first job, so its latency does not include torch/diffusers imports.
    for kind, target in HANDLERS.items():
        module = target.partition(":")[0]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            logger.warning("handler for %r jobs is not importable here (%s); such jobs will fail", kind, exc)
