"""Fan-out jobs in embedded mode (SQLite and PostgreSQL): a distributed ingest split in chunks, resubmission,
a chunk that keeps failing, cancel, and a parent whose last child ended while nobody settled it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from core.db.engine import read_session, write_session
from core.db.models import Asset, Job
from core.jobs import (
    HANDLERS,
    cancel,
    child_id,
    get_job,
    job_to_dict,
    list_jobs,
    settle_detached,
    stop_executors,
    submit,
    wait,
)
from core.settings import IngestSettings, JobSettings, Settings
from tests import fanout_handlers
from tests.jobs_helpers import wait_until
from tests.media_images import write_images


@pytest.fixture
def embedded(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Embedded mode with the test fan-out kinds registered, chunks of 5 and fast retries."""
    for kind, target in fanout_handlers.HANDLERS.items():
        monkeypatch.setitem(HANDLERS, kind, target)
    library = tmp_path / "library"
    library.mkdir()
    yield settings.model_copy(
        update={
            "ingest": IngestSettings(allowed_roots=[library], chunk_size=5),
            "jobs": JobSettings(max_attempts=2, lease_s=3.0, heartbeat_s=0.5),
        }
    )
    stop_executors()


def _library(settings: Settings) -> Path:
    roots = settings.ingest.allowed_roots
    assert roots
    return roots[0]


def _indexed_sha_counts(settings: Settings) -> list[int]:
    with read_session(settings) as session:
        statement = select(func.count()).select_from(Asset).where(Asset.status == "indexed").group_by(Asset.sha256)
        rows = session.execute(statement).scalars()
        return list(rows)


def test_distributed_ingest_splits_in_chunks_and_merges_their_results(embedded: Settings) -> None:
    library = _library(embedded)
    write_images(library / "a", 13)
    write_images(library / "b", 10, start_seed=100)
    (library / "b" / "broken.png").write_bytes(b"\x89PNG not really")

    job = submit("ingest", {"paths": [str(library)], "distributed": True}, settings=embedded)
    done = wait(job.id, 300, embedded)
    data = job_to_dict(done)
    assert data["status"] == "succeeded", data["error"]
    result = data["result"]
    assert (result["chunks"], result["chunk_status"]) == (5, {"succeeded": 5, "failed": 0, "canceled": 0})
    assert (result["indexed"], result["skipped"], result["failed"], data["progress"]) == (23, 0, 1, 1.0)
    assert [f["path"].endswith("broken.png") for f in result["failures"]] == [True]
    assert len(set(result["asset_ids"])) == 23 and result["failed_chunks"] == []

    chunks = list_jobs(parent_id=job.id, limit=100, settings=embedded)
    assert sorted(c.id for c in chunks) == sorted(child_id(job.id, i) for i in range(5))
    assert {(c.kind, c.status, c.parent_id) for c in chunks} == {("ingest_chunk", "succeeded", job.id)}
    assert job.id in {j.id for j in list_jobs(settings=embedded)}
    assert not {c.id for c in chunks} & {j.id for j in list_jobs(limit=100, settings=embedded)}  # top level only
    assert _indexed_sha_counts(embedded) == [1] * 23

    # The same library again: a fast no-op that indexes nothing twice.
    again = wait(submit("ingest", {"paths": [str(library)], "distributed": True}, settings=embedded).id, 300, embedded)
    assert again.status == "succeeded", again.error
    assert (again.result["indexed"], again.result["skipped"]) == (0, 23)
    assert _indexed_sha_counts(embedded) == [1] * 23


def test_a_chunk_that_keeps_failing_is_retried_then_reported_with_its_files(embedded: Settings) -> None:
    children = [["a1", "a2"], ["bad1", "b2"], ["c1"]]
    job = submit(fanout_handlers.PARENT_KIND, {"children": children}, settings=embedded)
    done = wait(job.id, 120, embedded)
    assert done.status == "failed"
    assert (
        done.error is not None and "1 of 3 chunks did not finish" in done.error and "cannot process bad1" in done.error
    )
    result = done.result
    assert (result["processed"], result["parent_part"], result["chunks"]) == (3, 1, 3)
    assert result["chunk_status"] == {"succeeded": 2, "failed": 1, "canceled": 0}
    (failed,) = result["failed_chunks"]
    assert (failed["job_id"], failed["files"], failed["paths"]) == (child_id(job.id, 1), 2, ["bad1", "b2"])
    bad_child = get_job(failed["job_id"], embedded)
    assert bad_child is not None and bad_child.attempts == 2  # retried once (max_attempts=2), then reported


def test_cancel_reaches_children_and_ends_the_parent(embedded: Settings) -> None:
    # The first child holds the executor's only thread until canceled; the other 39 wait in the queue.
    children = [["hold"]] + [[f"x{i}"] for i in range(39)]
    job = submit(fanout_handlers.PARENT_KIND, {"children": children}, settings=embedded)
    first = child_id(job.id, 0)
    wait_until(lambda: (j := get_job(first, embedded)) is not None and j.status == "running", 60, "the first child")
    cancel(job.id, embedded)
    done = wait(job.id, 60, embedded)
    assert done.status == "canceled"
    ended = list_jobs(parent_id=job.id, limit=100, settings=embedded)
    assert len(ended) == 40 and {c.status for c in ended} == {"canceled"}
    assert done.result["chunk_status"] == {"succeeded": 0, "failed": 0, "canceled": 40}


def test_the_reaper_settles_a_parent_nobody_settled(embedded: Settings) -> None:
    job = submit(fanout_handlers.PARENT_KIND, {"children": [["a"], ["b"]]}, settings=embedded)
    done = wait(job.id, 60, embedded)
    assert done.status == "succeeded"
    # As if the process that ended the last child died before settling: the parent is left as it detached.
    detached = {"parent_part": 1, "chunks": 2}
    with write_session(embedded) as session:
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(status="running", progress=0.5, finished_at=None, result=detached)
        )
    assert settle_detached(embedded) >= 1
    settled = get_job(job.id, embedded)
    assert settled is not None and (settled.status, settled.progress) == ("succeeded", 1.0)
    assert settled.result["processed"] == 2


def test_a_retry_whose_message_was_lost_is_sent_again(embedded: Settings) -> None:
    from core.db.models import utcnow
    from core.jobs import META_KEY
    from core.jobs.reaper import redispatch_unclaimed

    lease = timedelta(seconds=embedded.jobs.lease_s)
    params = {"items": [{"path": "a"}], META_KEY: {"queue": "ingest"}}
    # Retries left queued with no message anywhere: one due two leases ago, one due just now (its message may
    # still be on its way, so the reaper leaves it alone; this process's executor then picks up both on start).
    lost, recent = (
        Job(kind=fanout_handlers.CHILD_KIND, status="queued", params=params, result={}),
        Job(kind=fanout_handlers.CHILD_KIND, status="queued", params=params, result={}),
    )
    lost.lease_expires_at, recent.lease_expires_at = utcnow() - 2 * lease, utcnow()
    with write_session(embedded) as session:
        session.add_all([lost, recent])
    assert redispatch_unclaimed(embedded) == [lost.id]
    done = wait(lost.id, 60, embedded)
    assert (done.status, done.attempts, done.result["processed"]) == ("succeeded", 1, 1)
