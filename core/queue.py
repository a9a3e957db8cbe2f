"""The Celery app, built from settings: queues ``gpu`` and ``ingest``, late acks, one message prefetched per thread.

Celery only moves job ids; the Job table holds status and results, so no result backend is configured. One task per
job kind (``sensorium.job.<kind>``) runs core.job_runner.execute, which finds the kind's handler in HANDLERS: a
domain adds a kind with one HANDLERS line and no Celery code.
"""

from __future__ import annotations

import importlib
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

from core.jobs import HANDLERS, QUEUES
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

TASK_PREFIX = "sensorium.job."
# Fail fast when the broker is down: the caller records the job as failed and reports it (REST: 503).
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.5}

_apps: dict[str, Celery] = {}
_apps_lock = threading.Lock()


def task_name(kind: str) -> str:
    """Return the Celery task name that runs jobs of ``kind``."""
    return f"{TASK_PREFIX}{kind}"


def get_celery_app(settings: Settings | None = None) -> Celery:
    """Return this process's Celery app for the configured broker (built once per broker URL)."""
    settings = settings or get_settings()
    if not settings.broker_url:
        raise RuntimeError("no broker configured: set SENSORIUM_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    with _apps_lock:
        app = _apps.get(settings.broker_url)
        if app is None:
            app = _apps[settings.broker_url] = _build(settings)
    return app


def _build(settings: Settings) -> Celery:
    from celery import Celery
    from kombu import Queue

    app = Celery("sensorium", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="gpu",
        task_acks_late=True,
        # One job at a time per worker thread: a prefetched job would wait behind a long generation.
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_publish_retry_policy=_PUBLISH_RETRY,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    for kind in HANDLERS:
        app.task(name=task_name(kind), ignore_result=True, acks_late=True)(_job_task)
    return app


def _job_task(job_id: str) -> None:
    from core.job_runner import execute

    # The runner records every outcome in the Job table; the task never raises, so its message is always acked.
    try:
        execute(job_id, get_settings())
    except Exception:
        logger.exception("job %s: the runner failed; the reaper will retry it when its lease expires", job_id)


def send_job(
    job_id: str, kind: str, queue: str, settings: Settings, *, message_id: str, countdown: float = 0.0
) -> None:
    """Publish a message asking a worker on ``queue`` to run the job."""
    get_celery_app(settings).send_task(
        task_name(kind),
        args=[job_id],
        queue=queue,
        task_id=message_id,
        countdown=countdown or None,
        retry=True,
        retry_policy=_PUBLISH_RETRY,
    )


def run_worker(queues: list[str], concurrency: int, settings: Settings | None = None) -> None:
    """Run a Celery worker in this process (threads pool) with a reaper thread, until it is stopped."""
    from celery import signals

    from core.job_reaper import Reaper

    settings = settings or get_settings()
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown or not queues:
        raise ValueError(f"unknown queue {', '.join(unknown) or '(none)'}; known: {', '.join(QUEUES)}")
    app = get_celery_app(settings)
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
