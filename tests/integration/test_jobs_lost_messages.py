"""A queued job whose message was lost is sent again by the reaper (SQLite and PostgreSQL; a real Redis broker):
a message still waiting in the broker is left alone, a lost one is replaced, and the replaced one is dropped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from core.db.engine import write_session
from core.db.models import Job, utcnow
from core.jobs import HANDLERS, META_KEY, cancel, get_job, stop_executors, submit, wait
from core.jobs.reaper import redispatch_unclaimed
from core.jobs.runner import execute
from core.settings import JobSettings, Settings
from tests import fanout_handlers
from tests.jobs_helpers import free_redis_db

LEASE_S = 2.0


@pytest.fixture
def test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the media-free test job kinds."""
    for kind, target in fanout_handlers.HANDLERS.items():
        monkeypatch.setitem(HANDLERS, kind, target)


def _backdate(job_id: str, settings: Settings, leases: float) -> None:
    """Make the job look created ``leases`` leases ago (its message as old)."""
    with write_session(settings) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(created_at=utcnow() - timedelta(seconds=leases * settings.jobs.lease_s))
        )


@pytest.fixture
def redis_settings(settings: Settings, test_kinds: None) -> Iterator[tuple[Settings, object]]:
    """Settings with a real Redis broker on an empty database of its own (flushed afterwards)."""
    import redis

    number = free_redis_db()
    client = redis.Redis(host="127.0.0.1", port=6379, db=number)
    yield (
        settings.model_copy(
            update={"broker_url": f"redis://127.0.0.1:6379/{number}", "jobs": JobSettings(lease_s=LEASE_S)}
        ),
        client,
    )
    client.flushdb()
    client.close()


def _queued_message_ids(client: object, queue: str) -> list[str]:
    raw = client.lrange(queue, 0, -1)  # type: ignore[attr-defined]
    return [json.loads(message)["headers"]["id"] for message in raw]


def test_a_lost_broker_message_is_replaced_and_the_stale_one_dropped(redis_settings: tuple[Settings, object]) -> None:
    settings, client = redis_settings
    job = submit(fanout_handlers.CHILD_KIND, {"items": [{"path": "a"}]}, queue="ingest", settings=settings)
    first_message = job.celery_id
    assert first_message and _queued_message_ids(client, "ingest") == [first_message]

    # Older than a lease but still waiting in Redis (only behind other work): left alone.
    _backdate(job.id, settings, 3)
    assert redispatch_unclaimed(settings) == []
    assert _queued_message_ids(client, "ingest") == [first_message]

    # The broker loses the message (a Redis restart without persistence): the reaper sends a new one.
    client.delete("ingest")  # type: ignore[attr-defined]
    assert redispatch_unclaimed(settings) == [job.id]
    resent = get_job(job.id, settings)
    assert resent is not None and resent.status == "queued" and resent.celery_id not in (None, first_message)
    assert _queued_message_ids(client, "ingest") == [resent.celery_id]
    # Due again now: the next pass leaves the new message alone.
    assert redispatch_unclaimed(settings) == []

    # Had the first message only been delayed, a worker receiving it now drops it; the new one runs the job.
    assert execute(job.id, settings, message_id=first_message) is None
    assert execute(job.id, settings, message_id=resent.celery_id) == "succeeded"
    done = get_job(job.id, settings)
    assert done is not None and (done.status, done.attempts, done.result["processed"]) == ("succeeded", 1, 1)


def test_a_queued_job_nobody_holds_is_run_by_the_embedded_reaper(settings: Settings, test_kinds: None) -> None:
    embedded = settings.model_copy(update={"jobs": JobSettings(lease_s=LEASE_S, heartbeat_s=0.5)})
    params = {"items": [{"path": "a"}], META_KEY: {"queue": "ingest"}}
    # Left queued by a process that died before handing it to any executor, never retried (no due time).
    orphan = Job(kind=fanout_handlers.CHILD_KIND, status="queued", params=params, result={})
    orphan.created_at = utcnow() - timedelta(seconds=3 * LEASE_S)
    young = Job(kind=fanout_handlers.CHILD_KIND, status="queued", params=params, result={})
    with write_session(embedded) as session:
        session.add_all([orphan, young])
    try:
        # No executor runs here: nothing holds either job. Only the one older than a lease is sent.
        assert redispatch_unclaimed(embedded) == [orphan.id]
        done = wait(orphan.id, 60, embedded)
        assert (done.status, done.result["processed"]) == ("succeeded", 1)
    finally:
        stop_executors()


def test_the_reaper_leaves_jobs_waiting_in_a_live_executor_alone(settings: Settings, test_kinds: None) -> None:
    embedded = settings.model_copy(update={"jobs": JobSettings(lease_s=LEASE_S, heartbeat_s=0.5)})
    try:
        # The only ingest thread is held by a child that waits for a cancel; the second job waits behind it.
        holder = submit(fanout_handlers.CHILD_KIND, {"items": [{"path": "hold"}]}, settings=embedded)
        behind = submit(fanout_handlers.CHILD_KIND, {"items": [{"path": "b"}]}, settings=embedded)
        _backdate(behind.id, embedded, 3)
        assert redispatch_unclaimed(embedded) == []
        cancel(holder.id, embedded)
        assert wait(behind.id, 60, embedded).status == "succeeded"
    finally:
        stop_executors()
