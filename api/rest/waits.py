"""Waiting for jobs without holding a worker thread, and at most ``api.max_waits_per_key`` waits per key at once.

A ``wait=`` request awaits a future on the event loop. One poll task per process reads the status of every awaited
job in a single short query (offloaded to a thread) every ``api.wait_poll_s`` seconds and resolves the futures of
jobs that have ended, so a thousand waits cost one query a tick and no thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio.to_thread

from api.rest.problems import ProblemError

if TYPE_CHECKING:
    from core.db.models import Job
    from core.settings import Settings

log = logging.getLogger("sensorium.api")
_ANONYMOUS = "<no key>"


def ended_jobs(job_ids: list[str], settings: Settings) -> set[str]:
    """Return those of ``job_ids`` that have ended or no longer exist."""
    from sqlalchemy import select

    from core.db.engine import read_session
    from core.db.models import Job
    from core.jobs import TERMINAL

    with read_session(settings) as session:
        rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids))).all()
    running = {job_id for job_id, status in rows if status not in TERMINAL}
    return set(job_ids) - running


class JobWaiter:
    """Awaits job ends for every request of one process; the per-key cap counts the waits in progress."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._futures: dict[str, set[asyncio.Future[None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None
        self._held: Counter[str] = Counter()

    def in_progress(self) -> int:
        """Return how many wait slots this process's keys hold now."""
        return sum(self._held.values())

    @asynccontextmanager
    async def slot(self, key_id: str | None, wait_s: float) -> AsyncIterator[None]:
        """Hold one of the key's wait slots if it waits at all; 429 ``too-many-waits`` when the key holds them all."""
        if wait_s <= 0:
            yield
            return
        key = key_id or _ANONYMOUS
        limit = self.settings.api.max_waits_per_key
        if self._held[key] >= limit:
            raise ProblemError(
                "too-many-waits",
                f"this key already holds {limit} waiting requests (SENSORIUM_API__MAX_WAITS_PER_KEY); "
                "retry without `wait`, or poll the job URL",
                headers={"Retry-After": "1"},
            )
        self._held[key] += 1
        try:
            yield
        finally:
            self._held[key] -= 1
            if self._held[key] <= 0:
                del self._held[key]

    async def until_ended(self, job_id: str, timeout_s: float) -> None:
        """Return once the job has ended (or is gone), or after ``timeout_s`` seconds, whichever comes first."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests start several): the old futures died with the old one
            self._loop, self._futures, self._poller = loop, {}, None
        future: asyncio.Future[None] = loop.create_future()
        self._futures.setdefault(job_id, set()).add(future)
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll())
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            pass
        finally:
            waiting = self._futures.get(job_id)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._futures[job_id]

    async def _poll(self) -> None:
        while self._futures:
            try:
                ended = await anyio.to_thread.run_sync(ended_jobs, list(self._futures), self.settings)
            except Exception:  # a database hiccup must not end every wait early or leave them unpolled
                log.warning("polling waited-on jobs failed; retrying", exc_info=True)
                ended = set()
            for job_id in ended:
                for future in self._futures.pop(job_id, set()):
                    if not future.done():
                        future.set_result(None)
            await asyncio.sleep(self.settings.api.wait_poll_s)


async def wait_for_job(waiter: JobWaiter, job: Job, wait_s: float) -> Job:
    """Return ``job`` as it stands once it has ended or ``wait_s`` passed; no thread is held while waiting.

    Call it inside ``waiter.slot(...)``, taken before the job was submitted, so a refused wait leaves no job behind.
    """
    from core.jobs import TERMINAL, get_job

    if wait_s <= 0 or job.status in TERMINAL:
        return job
    await waiter.until_ended(job.id, wait_s)
    found = await anyio.to_thread.run_sync(get_job, job.id, waiter.settings)
    if found is None:
        raise ProblemError("not-found", f"no job {job.id!r}")
    return found
