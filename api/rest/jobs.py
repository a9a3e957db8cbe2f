"""Jobs: read, list and cancel; a key sees the jobs it created, admin sees every job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
from litestar import Controller, Request, get, post
from litestar.params import Parameter
from pydantic import BaseModel, Field

from api.rest.auth import ANY_SCOPE, Principal, principal
from api.rest.problems import ProblemError, problem_responses
from api.rest.waits import wait_for_job

if TYPE_CHECKING:
    from api.rest.state import ApiState
    from core.db.models import Job

MAX_WAIT_S = 60.0
JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
JobKind = Literal["generate", "ingest", "ingest_chunk"]


class JobOut(BaseModel):
    """A job: long-running work (ingest, generation) and how far it got."""

    id: str
    kind: str
    status: str = Field(description="queued, running, succeeded, failed or canceled")
    progress: float = Field(ge=0, le=1)
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    queue: str | None
    parent_id: str | None = Field(description="For a chunk of a distributed ingest: the job it belongs to.")
    attempts: int
    cancel_requested: bool
    callback_url: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    url: str = Field(description="Where to poll this job.")


class JobList(BaseModel):
    """One page of jobs, newest first."""

    items: list[JobOut]
    limit: int
    offset: int


def job_out(job: Job) -> JobOut:
    """Return the public view of a job."""
    from core.jobs import job_to_dict

    return JobOut.model_validate({**job_to_dict(job), "url": f"/v1/jobs/{job.id}"})


def visible_job(job_id: str, who: Principal, settings: Any) -> Job:
    """Return the job if this caller may see it; someone else's job is reported as missing, not forbidden."""
    from core.jobs import get_job

    job = get_job(job_id, settings)
    if job is None or not (who.is_admin or (who.key_id is not None and job.owner_key_id == who.key_id)):
        raise ProblemError("not-found", f"no job {job_id!r}")
    return job


class JobController(Controller):
    """Inspect and cancel jobs."""

    path = "/jobs"
    tags = ["jobs"]

    @get(
        "/",
        summary="List jobs",
        opt={"scope": ANY_SCOPE},
        responses=problem_responses(401, 403, 422, 429),
        sync_to_thread=True,
    )
    def list_jobs(
        self,
        request: Request[Any, Any, Any],
        status: JobStatus | None = None,
        kind: JobKind | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
        parent: Annotated[
            str | None, Parameter(max_length=64, description="List this job's chunks instead of top-level jobs.")
        ] = None,
    ) -> JobList:
        """Return the caller's top-level jobs (every job for admin), newest first, or one job's chunks."""
        from core.jobs import list_jobs

        state: ApiState = request.app.state.api
        who = principal(request)
        jobs = list_jobs(
            owner_key_id=None if who.is_admin else (who.key_id or ""),
            status=status,
            kind=kind,
            parent_id=parent,
            limit=limit,
            offset=offset,
            settings=state.settings,
        )
        return JobList(items=[job_out(j) for j in jobs], limit=limit, offset=offset)

    @get(
        "/{job_id:str}",
        summary="Get a job",
        opt={"scope": ANY_SCOPE},
        responses=problem_responses(401, 403, 404, 422, 429),
    )
    async def get_job(
        self,
        request: Request[Any, Any, Any],
        job_id: str,
        wait: Annotated[
            float, Parameter(ge=0, le=MAX_WAIT_S, description="Block up to this many seconds for the job to end.")
        ] = 0.0,
    ) -> JobOut:
        """Return a job, optionally waiting (bounded) until it ends; 429 `too-many-waits` over the key's wait cap."""
        state: ApiState = request.app.state.api
        who = principal(request)
        job = await anyio.to_thread.run_sync(visible_job, job_id, who, state.settings)
        async with state.waiter.slot(who.key_id, wait):
            return job_out(await wait_for_job(state.waiter, job, wait))

    @post(
        "/{job_id:str}/cancel",
        status_code=200,
        summary="Cancel a job",
        opt={"scope": ANY_SCOPE},
        responses=problem_responses(401, 403, 404, 429),
        sync_to_thread=True,
    )
    def cancel_job(self, request: Request[Any, Any, Any], job_id: str) -> JobOut:
        """Cancel a queued job now or a running one at its next step; a finished job is returned unchanged."""
        from core.jobs import cancel

        state: ApiState = request.app.state.api
        job = visible_job(job_id, principal(request), state.settings)
        return job_out(cancel(job.id, state.settings))


def submit_job(
    state: ApiState,
    who: Principal,
    kind: str,
    params: dict[str, Any],
    *,
    queue: str,
    idempotency_key: str | None,
    callback_url: str | None = None,
) -> Job:
    """Submit a job for this caller, turning the job service's refusals into problems (429, 409, 422, 503)."""
    from core.jobs import submit

    with job_refusals_as_problems(callback_given=callback_url is not None):
        return submit(
            kind,
            params,
            queue=queue,
            owner_key_id=who.key_id,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
            settings=state.settings,
        )


@contextmanager
def job_refusals_as_problems(*, callback_given: bool) -> Iterator[None]:
    """Turn the job service's refusals inside the block into problems (429, 409, 422, 503)."""
    from core.jobs import IdempotencyConflict, JobDispatchError, JobRequestError, QueueFull

    try:
        yield
    except QueueFull as exc:
        # Retry-After comes from the queue's drain rate; a key over its share is told that others are not blocked.
        whose = "; other keys can still submit" if exc.per_key else ""
        raise ProblemError(
            "queue-full",
            f"{exc}{whose}; retry in {exc.retry_after_s} s",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None
    except IdempotencyConflict as exc:
        raise ProblemError("conflict", str(exc)) from None
    except JobRequestError as exc:
        field = "callback_url" if callback_given and "callback" in str(exc).lower() else "Idempotency-Key"
        raise ProblemError("validation-error", str(exc), errors=[(field, str(exc))]) from None
    except JobDispatchError as exc:
        raise ProblemError("unavailable", str(exc)) from None


IDEMPOTENCY_HEADER = Parameter(
    header="Idempotency-Key",
    required=False,
    min_length=1,
    max_length=255,
    description="Repeat a request with the same key to get the same job instead of a new one.",
)
