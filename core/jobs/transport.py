"""How a queued job reaches a worker: a Celery broker (``broker_url`` set) or this process's embedded executor.

Chosen when a process first dispatches: with a broker, a message carrying only the job id goes to the queue
(``sensorium.job.<kind>`` task; late acks, one message prefetched per worker thread, no result backend: the Job
table holds status and results). Without one, the embedded executor (core/jobs/embedded.py, which sits above the
runner) installs itself here with use_embedded().
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from core.jobs.model import QUEUES
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

TASK_PREFIX = "sensorium.job."
# Fail fast when the broker is down: the caller records the job as failed and reports it (REST: 503).
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.5}
# kombu's Redis transport keeps a queue's messages in these lists: the queue name, then one per priority step.
_REDIS_PRIORITY_SEPARATOR = "\x06\x16"
_REDIS_PRIORITY_STEPS = (0, 3, 6, 9)


class Transport(Protocol):
    """Carries job ids to whoever runs them."""

    def send(self, job_id: str, kind: str, queue: str, *, message_id: str | None, countdown: float) -> None:
        """Hand the job to a worker of ``queue`` (after ``countdown`` seconds)."""

    def waiting(self, messages: dict[str, str | None]) -> set[str]:
        """Return the job ids (of ``{job id: message id}``) whose message still waits to be taken."""


def task_name(kind: str) -> str:
    """Return the Celery task name that runs jobs of ``kind``."""
    return f"{TASK_PREFIX}{kind}"


_apps: dict[str, Celery] = {}
_apps_lock = threading.Lock()


def get_celery_app(settings: Settings | None = None) -> Celery:
    """Return this process's Celery app for the configured broker (built once per broker URL)."""
    settings = settings or get_settings()
    if not settings.broker_url:
        raise RuntimeError("no broker configured: set SENSORIUM_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    with _apps_lock:
        app = _apps.get(settings.broker_url)
        if app is None:
            app = _apps[settings.broker_url] = _build(settings.broker_url)
    return app


def _build(broker_url: str) -> Celery:
    from celery import Celery
    from kombu import Queue

    app = Celery("sensorium", broker=broker_url, set_as_current=False)
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
    return app


class CeleryTransport:
    """Publishes one message per dispatch to the broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, job_id: str, kind: str, queue: str, *, message_id: str | None, countdown: float) -> None:
        """Publish a message asking a worker on ``queue`` to run the job."""
        get_celery_app(self.settings).send_task(
            task_name(kind),
            args=[job_id],
            queue=queue,
            task_id=message_id,
            countdown=countdown or None,
            retry=True,
            retry_policy=_PUBLISH_RETRY,
        )

    def waiting(self, messages: dict[str, str | None]) -> set[str]:
        """Return the jobs whose message is still in a Redis queue list (other brokers cannot be looked into:
        none is reported waiting, and a resent message's duplicate is dropped by the runner's message check)."""
        url = self.settings.broker_url or ""
        if not url.startswith(("redis://", "rediss://")) or not messages:
            return set()
        import redis

        queued_ids: set[str] = set()
        client = redis.Redis.from_url(url)
        try:
            for name in QUEUES:
                for step in _REDIS_PRIORITY_STEPS:
                    key = name if step == 0 else f"{name}{_REDIS_PRIORITY_SEPARATOR}{step}"
                    queued_ids.update(_message_ids(client.lrange(key, 0, -1)))
        finally:
            client.close()
        return {job_id for job_id, message_id in messages.items() if message_id in queued_ids}


def _message_ids(raw_messages: list[Any]) -> set[str]:
    found = set()
    for raw in raw_messages:
        try:
            found.add(str(json.loads(raw)["headers"]["id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found


_embedded: Callable[[Settings], Transport] | None = None
_embedded_running: Callable[[Settings], Transport | None] | None = None


def use_embedded(factory: Callable[[Settings], Transport], running: Callable[[Settings], Transport | None]) -> None:
    """Install this process's embedded executor: ``factory`` returns it (starting it on first use), ``running``
    returns it only if already started (called once by core/jobs/embedded.py)."""
    global _embedded, _embedded_running
    _embedded, _embedded_running = factory, running


def transport_for(settings: Settings) -> Transport:
    """Return the transport these settings choose: Celery with a broker, else the embedded executor."""
    if settings.broker_url:
        return CeleryTransport(settings)
    if _embedded is None:
        raise RuntimeError("no embedded executor installed: import core.jobs, not only its modules")
    return _embedded(settings)


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
    transport_for(settings).send(job_id, kind, queue, message_id=message_id, countdown=countdown)


def waiting(settings: Settings, messages: dict[str, str | None]) -> set[str]:
    """Return the job ids (of ``{job id: message id}``) whose message still waits in the broker, or in this
    process's embedded executor if one runs (none is started for this)."""
    if settings.broker_url:
        return CeleryTransport(settings).waiting(messages)
    running = _embedded_running(settings) if _embedded_running is not None else None
    return running.waiting(messages) if running is not None else set()
