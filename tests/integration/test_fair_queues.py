"""Fair queues (SQLite and PostgreSQL, jobs held in a real Redis broker with no worker): each API key gets its
share of the waiting queue, so one key cannot lock the others out, and a refusal's Retry-After follows the queue's
drain rate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from litestar.exceptions import HTTPException

from api.rest.jobs import job_refusals_as_problems
from core.db.engine import write_session
from core.db.models import Job, utcnow
from core.jobs import QueueFull, submit
from core.settings import JobSettings, Settings
from tests.jobs_helpers import free_redis_db


@pytest.fixture
def held(settings: Settings) -> Iterator[Settings]:
    """Settings whose jobs wait in a Redis database of their own that no worker reads (flushed afterwards)."""
    import redis

    number = free_redis_db()
    yield settings.model_copy(
        update={
            "broker_url": f"redis://127.0.0.1:6379/{number}",
            "jobs": JobSettings(max_queue_depth=6, max_queued_per_key=3),
        }
    )
    client = redis.Redis(host="127.0.0.1", port=6379, db=number)
    client.flushdb()
    client.close()


def _finished_history(settings: Settings, count: int, over_s: float) -> None:
    """Record ``count`` generate jobs that ended evenly over the last ``over_s`` seconds."""
    now = utcnow()
    with write_session(settings) as session:
        for i in range(count):
            end = now - timedelta(seconds=over_s * (count - 1 - i) / max(1, count - 1))
            session.add(Job(kind="generate", status="succeeded", params={}, result={}, started_at=end, finished_at=end))


def _generate(settings: Settings, key: str) -> Job:
    return submit("generate", {"prompt": "a cube"}, owner_key_id=key, settings=settings)


def test_one_key_gets_its_share_and_others_still_submit(held: Settings) -> None:
    _finished_history(held, 10, 100.0)  # 10 ended over the last 100 s: 0.1 jobs a second
    for _ in range(2):
        _generate(held, "admin")
    for _ in range(3):
        _generate(held, "tenant")
    with pytest.raises(QueueFull) as refused:
        _generate(held, "tenant")
    assert refused.value.per_key and "share" in str(refused.value)
    # The tenant's oldest waiting job starts after 3 jobs have left the queue: about 30 s at 0.1 jobs a second.
    assert 30 <= refused.value.retry_after_s <= 31

    # The admin is not locked out by the tenant's jobs; the whole queue (6) still bounds everyone.
    _generate(held, "admin")
    with pytest.raises(QueueFull) as full:
        _generate(held, "another-key")
    assert not full.value.per_key
    # One job more than the limit must leave: about 10 s.
    assert 10 <= full.value.retry_after_s <= 11


def test_retry_after_follows_the_drain_rate(held: Settings) -> None:
    _finished_history(held, 61, 60.0)  # 61 ended over the last 60 s: about one a second
    for _ in range(3):
        _generate(held, "tenant")
    with pytest.raises(QueueFull) as first_in_line:
        _generate(held, "tenant")
    assert first_in_line.value.retry_after_s == 1  # the tenant's oldest job is next: one completion away


def test_retry_after_counts_the_jobs_ahead_of_the_key(held: Settings) -> None:
    _finished_history(held, 61, 60.0)
    for key in ("admin", "admin", "tenant", "tenant", "tenant"):
        _generate(held, key)
    with pytest.raises(QueueFull) as third_in_line:
        _generate(held, "tenant")
    assert third_in_line.value.retry_after_s == 3  # two other jobs start before the tenant's oldest


def test_a_refusal_becomes_a_429_with_its_retry_after() -> None:
    with pytest.raises(HTTPException) as problem, job_refusals_as_problems(callback_given=False):
        raise QueueFull("this API key already has 3 generate jobs waiting", 42, per_key=True)
    assert problem.value.status_code == 429
    assert problem.value.headers == {"Retry-After": "42"}
    assert "other keys can still submit" in str(problem.value.detail)
