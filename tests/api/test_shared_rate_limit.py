"""Two `sensorium serve` processes sharing a Redis broker enforce one rate limit in total, not one each; without
a broker each process counts on its own."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from api.rest.ratelimit import RateLimiter
from core.apikeys import create_key
from core.settings import Settings
from tests.api.conftest import start_server, stop_server
from tests.jobs_helpers import free_redis_db

PER_MINUTE = 6  # one token every 10 s: the test's few seconds refill none


def test_two_api_processes_sharing_redis_allow_the_limit_once(settings: Settings, tmp_path: Path) -> None:
    import redis

    number = free_redis_db()
    broker = f"redis://127.0.0.1:6379/{number}"
    env = {"SENSORIUM_BROKER_URL": broker, "SENSORIUM_API__RATE_LIMIT_PER_MINUTE": str(PER_MINUTE)}
    library = tmp_path / "library"
    library.mkdir()
    servers = [start_server(settings, library, tmp_path / f"server-{i}.log", env) for i in range(2)]
    try:
        secret = create_key("limited", ["search"], settings).secret
        headers = {"Authorization": f"Bearer {secret}"}
        started = time.monotonic()
        statuses: list[int] = []
        retry_after: list[str] = []
        for _ in range(PER_MINUTE):  # alternate between the replicas: 2 x PER_MINUTE requests in all
            for server in servers:
                response = httpx.get(f"{server.url}/v1/jobs", headers=headers, timeout=30)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    retry_after.append(response.headers["Retry-After"])
        elapsed = time.monotonic() - started
    finally:
        for server in servers:
            stop_server(server)
        client = redis.Redis(host="127.0.0.1", port=6379, db=number)
        client.flushdb()
        client.close()
    refilled = int(elapsed * PER_MINUTE / 60)
    assert set(statuses) <= {200, 429}
    # Per process this would be 2 x PER_MINUTE successes; shared, it is PER_MINUTE (plus any token refilled).
    assert PER_MINUTE <= statuses.count(200) <= PER_MINUTE + refilled, (statuses, elapsed)
    assert statuses[:PER_MINUTE] == [200] * PER_MINUTE
    assert retry_after and all(1 <= int(value) <= 10 for value in retry_after)


def test_without_redis_a_limiter_counts_in_its_process() -> None:
    limiter = RateLimiter(per_minute=2, redis_url=None)
    assert not limiter.shared
    assert [limiter.acquire("k") == 0.0 for _ in range(3)] == [True, True, False]


def test_an_unreachable_redis_falls_back_to_counting_here() -> None:
    limiter = RateLimiter(per_minute=2, redis_url="redis://127.0.0.1:1/0")
    assert limiter.shared
    assert [limiter.acquire("k") == 0.0 for _ in range(3)] == [True, True, False]
