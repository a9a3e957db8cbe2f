"""Generation routes: POST /v1/generate, GET /v1/generators, and OpenAI-compatible POST /v1/images/generations."""

from __future__ import annotations

import base64
import re
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from pydantic import BaseModel, ConfigDict, Field

from api.rest.auth import Principal, principal
from api.rest.bodies import form_model, media_type, parse_json_model, read_limited, read_multipart
from api.rest.jobs import IDEMPOTENCY_HEADER, JobOut, job_out, job_refusals_as_problems
from api.rest.openapi import form_schema, json_schema, operation
from api.rest.problems import ProblemError, problem_responses
from api.rest.schemas import RequestModel
from api.rest.state import ApiState
from api.rest.waits import wait_for_job
from generators.params import GenerationRequest

if TYPE_CHECKING:
    from core.db.models import Job

JSON = "application/json"
MULTIPART = "multipart/form-data"
MAX_WAIT_S = 300.0
OPENAI_DEFAULT_WAIT_S = 120.0
MAX_INIT_IMAGE_BYTES = 50 * 1024**2
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")


class GenerateBody(GenerationRequest, RequestModel):
    """A generation request; `init_image` is an asset id (or send the image itself as multipart `init_image`)."""

    model_config = ConfigDict(extra="forbid")

    callback_url: str | None = Field(default=None, max_length=2048, description="POSTed the job when it ends.")


class GeneratorOut(BaseModel):
    """A registered generator and whether it can run here."""

    name: str
    task: str
    model: str
    pipeline_class: str
    dtype: str
    description: str
    defaults: dict[str, Any]
    limits: dict[str, Any]
    random_weights: bool
    weights_available: bool
    default_for_task: bool


class GeneratorList(BaseModel):
    """Every registered generator."""

    generators: list[GeneratorOut]


class ImagesBody(RequestModel):
    """OpenAI `images.generate` request; `model` names a Sensorium generator (see GET /v1/generators)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=2000)
    model: str | None = Field(default=None, min_length=1, max_length=64)
    n: int = Field(default=1, ge=1, le=64)
    size: str | None = Field(default=None, max_length=16, description="`WIDTHxHEIGHT` or `auto`.")
    response_format: Literal["url", "b64_json"] = "url"
    quality: str | None = Field(default=None, max_length=32, description="Accepted for compatibility; ignored.")
    style: str | None = Field(default=None, max_length=32, description="Accepted for compatibility; ignored.")
    user: str | None = Field(default=None, max_length=256, description="Accepted for compatibility; ignored.")


class ImageDatum(BaseModel):
    """One generated image: a signed URL or base64 PNG."""

    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    """OpenAI `images.generate` response."""

    created: int
    data: list[ImageDatum]


def _submit(state: ApiState, who: Principal, data: dict[str, Any], idempotency_key: str | None) -> Job:
    """Validate and submit a generation; every refusal becomes a problem and no job is left behind."""
    from generators.params import InvalidGenerationParams
    from generators.registry import GeneratorUnavailable
    from generators.service import submit_generation

    try:
        with job_refusals_as_problems(callback_given=data.get("callback_url") is not None):
            return submit_generation(
                data, owner_key_id=who.key_id, idempotency_key=idempotency_key, settings=state.settings
            )
    except InvalidGenerationParams as exc:
        raise ProblemError("invalid-generation", str(exc), errors=exc.errors) from None
    except GeneratorUnavailable as exc:
        # The client can name a generator that is available here (GET /v1/generators says which).
        raise ProblemError("invalid-generation", str(exc), errors=[("generator", str(exc))]) from None


async def _submit_and_wait(
    state: ApiState, who: Principal, data: dict[str, Any], idempotency_key: str | None, wait_s: float
) -> Job:
    """Submit in a thread, then wait for the job on the event loop (no thread held while waiting)."""
    async with state.waiter.slot(who.key_id, wait_s):  # over the key's wait cap: 429 before anything is queued
        job = await anyio.to_thread.run_sync(_submit, state, who, data, idempotency_key)
        return await wait_for_job(state.waiter, job, wait_s)


def _store_init_image(state: ApiState, path: Any, name: str) -> str:
    from generators.params import InvalidGenerationParams
    from generators.service import store_init_image

    try:
        return store_init_image(path.read_bytes(), name, state.settings)
    except InvalidGenerationParams as exc:
        raise ProblemError("invalid-generation", str(exc), errors=exc.errors) from None


WAIT = Parameter(ge=0, le=MAX_WAIT_S, description="Block up to this many seconds for the job to end.")


class GenerateController(Controller):
    """Generate media as jobs."""

    path = "/"
    tags = ["generate"]

    @post(
        "/generate",
        status_code=202,
        summary="Generate images",
        opt={"scope": "generate", "accepts": (JSON, MULTIPART)},
        operation_class=operation(
            request_body={
                JSON: json_schema(GenerateBody),
                MULTIPART: form_schema(GenerateBody, {"init_image": False}, required=("prompt",)),
            }
        ),
        responses={
            200: ResponseSpec(JobOut, description="The job ended within `wait` seconds"),
            **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
        },
        request_max_body_size=None,  # read_limited / read_multipart enforce their own limits
    )
    async def generate(
        self,
        request: Request[Any, Any, Any],
        wait: Annotated[float, WAIT] = 0.0,
        idempotency_key: Annotated[str | None, IDEMPOTENCY_HEADER] = None,
    ) -> Response[JobOut]:
        """Queue a generation job (202), or return it finished (200) if it ends within `wait` seconds."""
        state: ApiState = request.app.state.api
        who = principal(request)
        if media_type(request) == MULTIPART:
            form = await read_multipart(
                request,
                tmp_root=state.settings.resolved_data_dir() / "tmp",
                max_file_bytes=min(state.settings.api.max_upload_bytes, MAX_INIT_IMAGE_BYTES),
                file_fields=frozenset({"init_image"}),
                max_files=1,
            )
            try:
                body = form_model(form, GenerateBody)
                if form.files:
                    if body.init_image is not None:
                        raise ProblemError(
                            "validation-error",
                            "send init_image as an asset id or a file, not both",
                            errors=[("init_image", "given twice")],
                        )
                    upload = form.files[0]
                    asset_id = await anyio.to_thread.run_sync(_store_init_image, state, upload.path, upload.filename)
                    body = body.model_copy(update={"init_image": asset_id})
            finally:
                form.cleanup()
        else:
            body = parse_json_model(await read_limited(request, state.settings.api.max_json_bytes), GenerateBody)
        data = body.model_dump(exclude_unset=True)
        job = await _submit_and_wait(state, who, data, idempotency_key, wait)
        out = job_out(job)
        finished = out.status in ("succeeded", "failed", "canceled")
        return Response(out, status_code=200 if finished else 202, headers={"Location": out.url})

    @get(
        "/generators",
        summary="List generators",
        opt={"scope": "generate"},
        responses=problem_responses(401, 403, 429, 503),
        sync_to_thread=True,
    )
    def generators(self, request: Request[Any, Any, Any]) -> GeneratorList:
        """Return every registered generator with its task, model, defaults and limits."""
        from generators.registry import GeneratorUnavailable
        from generators.service import describe_generators

        state: ApiState = request.app.state.api
        try:
            return GeneratorList.model_validate({"generators": describe_generators(state.settings)})
        except GeneratorUnavailable as exc:
            raise ProblemError("unavailable", str(exc)) from None

    @post(
        "/images/generations",
        status_code=200,
        summary="Generate images (OpenAI-compatible)",
        opt={"scope": "generate", "accepts": (JSON,)},
        responses={
            202: ResponseSpec(JobOut, description="Still running after `wait` seconds: poll the job"),
            **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 502, 503),
        },
    )
    async def images_generations(
        self,
        request: Request[Any, Any, Any],
        data: ImagesBody,
        wait: Annotated[float, WAIT] = OPENAI_DEFAULT_WAIT_S,
        idempotency_key: Annotated[str | None, IDEMPOTENCY_HEADER] = None,
    ) -> Response[ImagesResponse | JobOut]:
        """Generate like OpenAI's `images.generate`: waits for the job and returns URLs or base64 PNGs."""
        state: ApiState = request.app.state.api
        params: dict[str, Any] = {"prompt": data.prompt, "n": data.n}
        if data.model is not None:
            params["generator"] = data.model
        if data.size is not None and data.size != "auto":
            match = _SIZE.match(data.size)
            if match is None:
                raise ProblemError(
                    "invalid-generation", "size must be WIDTHxHEIGHT, e.g. 512x512", errors=[("size", "not WxH")]
                )
            params["width"], params["height"] = int(match.group(1)), int(match.group(2))
        job = await _submit_and_wait(state, principal(request), params, idempotency_key, wait)
        if job.status in ("queued", "running"):
            out = job_out(job)
            return Response(out, status_code=202, headers={"Location": out.url})
        if job.status != "succeeded":
            raise ProblemError("job-failed", f"generation job {job.id} {job.status}: {job.error or 'no reason given'}")
        images = await anyio.to_thread.run_sync(
            _images, state, list((job.result or {}).get("asset_ids", [])), data.response_format, str(request.base_url)
        )
        return Response(ImagesResponse(created=int(time.time()), data=images), status_code=200)


def _images(state: ApiState, asset_ids: list[str], response_format: str, base_url: str) -> list[ImageDatum]:
    if response_format == "url":
        return [ImageDatum(url=state.asset_url(base_url, asset_id, "content")) for asset_id in asset_ids]
    from core.blobs import BlobStore
    from index.services.assets import existing_assets

    blobs = BlobStore(state.settings.resolved_data_dir())
    found = {asset.id: asset for asset in existing_assets(state.settings, asset_ids)}
    images: list[ImageDatum] = []
    for asset_id in asset_ids:
        asset = found.get(asset_id)
        if asset is None or asset.blob_key is None:
            raise ProblemError("job-failed", f"output asset {asset_id} is gone")
        images.append(ImageDatum(b64_json=base64.b64encode(blobs.path(asset.blob_key).read_bytes()).decode()))
    return images
