"""POST /v1/ingest: index server-side folders, files or a JSONL manifest under the allowed roots, as a job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, post
from pydantic import ConfigDict, Field, model_validator

from api.rest.auth import principal
from api.rest.jobs import IDEMPOTENCY_HEADER, JobOut, job_out, submit_job
from api.rest.problems import ProblemError, problem_responses
from api.rest.schemas import RequestModel
from api.rest.state import ApiState

log = logging.getLogger("sensorium.api")

PathText = Annotated[str, Field(min_length=1, max_length=4096)]
Tag = Annotated[str, Field(min_length=1, max_length=256)]


class IngestBody(RequestModel):
    """What to ingest: server-side `paths` (files or folders, recursive) and/or a JSONL `manifest`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    paths: list[PathText] = Field(default_factory=list, max_length=1000)
    manifest: PathText | None = Field(
        default=None, description='JSONL file, one `{"path", "collection"?, "tags"?, "metadata"?}` per line.'
    )
    collection: str = Field(default="default", min_length=1, max_length=256)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    callback_url: str | None = Field(default=None, max_length=2048, description="POSTed the job when it ends.")
    distributed: bool | None = Field(
        default=None,
        description="Fan the files out in chunks to the `ingest` workers (default: yes when a broker is configured); "
        "the job's result then merges its chunks' and lists any chunk that failed after its retries.",
    )
    chunk_size: int | None = Field(
        default=None, ge=1, le=100_000, description="Files per chunk (default: the server's `ingest.chunk_size`)."
    )

    @model_validator(mode="after")
    def _something(self) -> IngestBody:
        if not self.paths and self.manifest is None:
            raise ValueError("give paths or a manifest")
        return self


def _checked(body: IngestBody, state: ApiState) -> dict[str, Any]:
    """Return the job params with every path resolved, refusing anything outside the allowed roots."""
    from index.ingest.discover import PathNotAllowed, check_allowed

    roots = state.settings.ingest.allowed_roots
    if roots is None:
        raise ProblemError(
            "ingest-disabled",
            "server-side ingest is off: set SENSORIUM_INGEST__ALLOWED_ROOTS to the folders the server may read",
        )
    named = [(f"paths.{i}", p) for i, p in enumerate(body.paths)]
    if body.manifest is not None:
        named.append(("manifest", body.manifest))
    resolved: dict[str, str] = {}
    for field, raw in named:
        if "\x00" in raw:
            raise ProblemError("validation-error", f"{field} contains a NUL byte", errors=[(field, "NUL byte")])
        path = Path(raw)
        if not path.is_absolute():
            raise ProblemError(
                "validation-error", f"{field} must be an absolute path", errors=[(field, "must be absolute")]
            )
        try:
            real = check_allowed(path, roots)
        except PathNotAllowed as exc:
            # The reason names where the path resolves and the roots: for the server's log, not for the client.
            log.info("ingest path refused: %s", exc)
            raise ProblemError(
                "path-not-allowed",
                f"{field} {raw!r} is not inside a folder this server may ingest from",
                errors=[(field, "not allowed")],
            ) from None
        if not real.exists():
            raise ProblemError("validation-error", f"{field}: no such file or folder", errors=[(field, "not found")])
        if field == "manifest" and not real.is_file():
            raise ProblemError("validation-error", "manifest must be a file", errors=[(field, "not a file")])
        resolved[field] = str(real)
    distributed = body.distributed if body.distributed is not None else bool(state.settings.broker_url)
    return {
        "paths": [resolved[f"paths.{i}"] for i in range(len(body.paths))],
        "manifest": resolved.get("manifest"),
        "collection": body.collection,
        "tags": list(body.tags),
        **({"distributed": True} if distributed else {}),
        **({"chunk_size": body.chunk_size} if distributed and body.chunk_size else {}),
    }


class IngestController(Controller):
    """Server-side ingest."""

    path = "/ingest"
    tags = ["ingest"]

    @post(
        "/",
        status_code=202,
        summary="Ingest server-side paths or a manifest",
        opt={"scope": "ingest", "accepts": ("application/json",)},
        responses=problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
    )
    async def ingest(
        self,
        request: Request[Any, Any, Any],
        data: IngestBody,
        idempotency_key: Annotated[str | None, IDEMPOTENCY_HEADER] = None,
    ) -> Response[JobOut]:
        """Queue an ingest job; poll the returned job (or its `url`) for progress and the result."""
        state: ApiState = request.app.state.api
        who = principal(request)

        def run() -> JobOut:
            params = _checked(data, state)
            job = submit_job(
                state,
                who,
                "ingest",
                params,
                queue="ingest",
                idempotency_key=idempotency_key,
                callback_url=data.callback_url,
            )
            return job_out(job)

        job = await anyio.to_thread.run_sync(run)
        return Response(job, status_code=202, headers={"Location": job.url})
