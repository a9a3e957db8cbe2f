"""Fan-out jobs: a parent hands its work to child jobs and ends when they all have, with their results merged.

A handler calls fan_out() with one params dict per child. The children are inserted with ids derived from the
parent's id and their position (a retried parent inserts none twice) and dispatched; then the parent waits
*detached*: status ``running`` with no lease, so the reaper leaves it alone and no worker thread is held. Whenever
a child ends, settle() refreshes the parent's progress and, once every child has ended, writes the merged result
and the final status. The reaper settles every detached parent on each pass, so a parent still ends if the process that
finished its last child died before settling it.

How children's results merge is the parent kind's business: its domain registers a hook with register_merge()
(ingest's lives in index/tasks.py); a kind without one keeps its own result and gets the chunk counts only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select, update

from core.db.engine import read_session, write_session
from core.db.models import Job, new_uuid, utcnow
from core.jobs.model import META_KEY, TERMINAL, AwaitChildren, JobCanceled, resolve_handler
from core.jobs.transport import dispatch

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.jobs.model import JobContext
    from core.settings import Settings

_INSERT_BATCH = 500
LIST_CAP = 10_000  # longest list a merged result should keep (asset ids, failures); counts stay exact


@dataclass(frozen=True)
class ChildOutcome:
    """How one child job ended, as a merge hook sees it."""

    job_id: str
    status: str
    result: dict[str, Any]
    error: str | None
    params: dict[str, Any]


# Given the parent's own result and every child (in id order, streamed), return the parent's merged result.
# Entries the hook puts under "failed_chunks" are kept; the machinery adds job_id, status and error to each.
MergeHook = Callable[[dict[str, Any], Iterator[ChildOutcome]], dict[str, Any]]
_MERGE_HOOKS: dict[str, MergeHook] = {}


def register_merge(kind: str, hook: MergeHook) -> None:
    """Make ``hook`` merge the children's results of ``kind`` jobs (called by the kind's domain at import)."""
    _MERGE_HOOKS[kind] = hook


def merge_hook(kind: str) -> MergeHook | None:
    """Return the merge hook of ``kind``, importing its handler's module first (where the hook is registered)."""
    if kind not in _MERGE_HOOKS:
        try:
            resolve_handler(kind)
        except (ImportError, ValueError):
            return None
    return _MERGE_HOOKS.get(kind)


def sum_into(into: dict[str, Any], part: dict[str, Any], list_cap: int = LIST_CAP) -> None:
    """Add ``part`` into ``into``: numbers summed, lists concatenated up to ``list_cap`` (a helper for hooks)."""
    for key, value in part.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            into[key] = into.get(key, 0) + value
        elif isinstance(value, list):
            kept = into.setdefault(key, [])
            kept.extend(value[: max(0, list_cap - len(kept))])


def child_id(parent_id: str, position: int) -> str:
    """Return the id of the parent's child at ``position`` (stable, so a retried fan-out finds its children)."""
    return hashlib.sha256(f"{parent_id}:{position}".encode()).hexdigest()[:32]


def _batches(children: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(children)
    while batch := list(islice(iterator, _INSERT_BATCH)):
        yield batch


def fan_out(
    ctx: JobContext, kind: str, children: Iterable[dict[str, Any]], *, queue: str, result: dict[str, Any]
) -> None:
    """Start one ``kind`` job on ``queue`` per params dict, then detach the calling job until they have all ended.

    ``result`` is the parent's own part of its result (children's results are merged into it). Raises
    AwaitChildren when at least one child exists (the runner detaches the job); returns when there was none.
    Raises JobCanceled if the parent is canceled meanwhile (children started so far are canceled too).
    """
    settings = ctx.settings
    with read_session(settings) as session:
        owner = session.scalar(select(Job.owner_key_id).where(Job.id == ctx.job_id))
    position = 0
    for batch in _batches(children):
        if ctx.should_cancel():
            cancel_children(ctx.job_id, settings)
            raise JobCanceled(result=result)
        ids = [child_id(ctx.job_id, position + i) for i in range(len(batch))]
        to_send = _insert_missing(ctx.job_id, owner, kind, queue, ids, batch, settings)
        for job_id, message_id in to_send:
            dispatch(job_id, kind, queue, settings, message_id=message_id)
        position += len(batch)
    if position == 0:
        return
    raise AwaitChildren({**result, "chunks": position})


def _insert_missing(
    parent_id: str,
    owner: str | None,
    kind: str,
    queue: str,
    ids: list[str],
    batch: list[dict[str, Any]],
    settings: Settings,
) -> list[tuple[str, str | None]]:
    """Insert the children not stored yet; return (id, message id) of every child of the batch still queued."""
    with write_session(settings) as session:
        stored = dict(session.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).tuples().all())
        to_send: list[tuple[str, str | None]] = []
        for job_id, params in zip(ids, batch, strict=True):
            message_id = new_uuid() if settings.broker_url else None
            if job_id in stored:
                if stored[job_id] == "queued":  # a fan-out that died between inserting and dispatching
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.status == "queued")
                        .values(celery_id=message_id, lease_expires_at=utcnow())
                    )
                    to_send.append((job_id, message_id))
                continue
            session.add(
                Job(
                    id=job_id,
                    kind=kind,
                    status="queued",
                    params={**params, META_KEY: {"queue": queue, "parent": parent_id}},
                    result={},
                    owner_key_id=owner,
                    parent_id=parent_id,
                    celery_id=message_id,
                )
            )
            to_send.append((job_id, message_id))
    return to_send


def cancel_children(parent_id: str, settings: Settings) -> None:
    """Cancel the parent's children: queued ones end now, running ones stop at their next step."""
    now = utcnow()
    with write_session(settings) as session:
        session.execute(
            update(Job)
            .where(Job.parent_id == parent_id, Job.status == "queued")
            .values(status="canceled", error="canceled before it started", finished_at=now, cancel_requested=True)
        )
        session.execute(
            update(Job).where(Job.parent_id == parent_id, Job.status == "running").values(cancel_requested=True)
        )


def settle(parent_id: str, settings: Settings) -> Job | None:
    """Refresh a detached parent's progress from its children; end it once they have all ended.

    Returns the parent when this call ended it (the caller runs its end-of-job steps), else None.
    """
    with write_session(settings) as session:
        parent = session.get(Job, parent_id, with_for_update=True)
        # Still fanning out (its attempt holds a lease) or already ended: nothing to settle.
        if parent is None or parent.status != "running" or parent.lease_expires_at is not None:
            return None
        total = int((parent.result or {}).get("chunks") or 0)
        ended, running_progress = session.execute(
            select(
                func.coalesce(func.sum(case((Job.status.in_(TERMINAL), 1), else_=0)), 0),
                func.coalesce(func.sum(case((Job.status.in_(TERMINAL), 0.0), else_=Job.progress)), 0.0),
            ).where(Job.parent_id == parent_id)
        ).one()
        if int(ended) < total:
            parent.progress = min(0.999, (int(ended) + float(running_progress)) / max(1, total))
            return None
        _finish(session, parent)
        return parent


class _Tally:
    """Streams a parent's children to its merge hook while counting how each ended."""

    def __init__(self, rows: Iterable[Any]) -> None:
        self._rows = iter(rows)
        self.status = {"succeeded": 0, "failed": 0, "canceled": 0}
        self.failed: list[dict[str, Any]] = []

    def __iter__(self) -> Iterator[ChildOutcome]:
        for job_id, status, result, error, params in self._rows:
            self.status[status] = self.status.get(status, 0) + 1
            if status != "succeeded":
                self.failed.append({"job_id": job_id, "status": status, "error": error})
            yield ChildOutcome(job_id, status, dict(result or {}), error, dict(params or {}))


def _finish(session: Session, parent: Job) -> None:
    """Write the parent's merged result and final status (its children have all ended)."""
    rows = session.execute(
        select(Job.id, Job.status, Job.result, Job.error, Job.params)
        .where(Job.parent_id == parent.id)
        .order_by(Job.id)
        .execution_options(yield_per=200)
    )
    tally = _Tally(rows)
    children = iter(tally)
    hook = merge_hook(parent.kind)
    merged = hook(dict(parent.result or {}), children) if hook is not None else dict(parent.result or {})
    for _ in children:  # a hook that stopped early still leaves every child counted
        pass
    details = {entry.get("job_id"): entry for entry in merged.get("failed_chunks") or [] if isinstance(entry, dict)}
    merged["chunk_status"] = tally.status
    merged["failed_chunks"] = [{**details.get(entry["job_id"], {}), **entry} for entry in tally.failed]
    parent.result = merged
    parent.finished_at = utcnow()
    if parent.cancel_requested:
        parent.status, parent.error = "canceled", "canceled"
    elif tally.failed:
        first = tally.failed[0]
        parent.status = "failed"
        parent.error = (
            f"{len(tally.failed)} of {merged.get('chunks')} chunks did not finish "
            f"(first: {first['status']}: {first['error']}); submit the same request again to finish them "
            "(work already done is skipped)"
        )
    else:
        parent.status, parent.error, parent.progress = "succeeded", None, 1.0


def detached_parents(settings: Settings, limit: int = 100) -> list[str]:
    """Return the ids of parents waiting detached for their children (at most ``limit``)."""
    with read_session(settings) as session:
        return list(
            session.scalars(select(Job.id).where(Job.status == "running", Job.lease_expires_at.is_(None)).limit(limit))
        )
