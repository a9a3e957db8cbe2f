"""Assets: list, get, content (with Range), thumbnail, delete, and multipart upload."""

from __future__ import annotations

import base64
import mimetypes
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream
from pydantic import BaseModel, Field

from api.rest.auth import principal
from api.rest.bodies import UploadedFile, form_model, read_multipart
from api.rest.content import file_response
from api.rest.jobs import IDEMPOTENCY_HEADER, JobOut, job_out, submit_job
from api.rest.openapi import form_schema, operation
from api.rest.problems import ProblemError, problem_responses
from api.rest.schemas import AssetOut, AssetStatus, Kind, RequestModel, Source, asset_out
from api.rest.state import ApiState

if TYPE_CHECKING:
    from core.db.models import Asset
    from core.settings import Settings
    from index.content import OpenContent

MULTIPART = "multipart/form-data"
MAX_UPLOAD_FILES = 16
CONTENT_TYPES = ("image/*", "audio/*", "video/*", "application/octet-stream")
SIGNED_QUERY = {
    "expires": Parameter(query="expires", required=False, description="Signed URL: expiry (unix time)."),
    "signature": Parameter(query="signature", required=False, description="Signed URL: HMAC signature."),
}
Tag = Annotated[str, Field(min_length=1, max_length=256)]


class AssetPage(BaseModel):
    """One page of assets, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[AssetOut]
    next_cursor: str | None


class AssetPatch(RequestModel):
    """New values for an asset; a list replaces the current one, an omitted field stays as it is."""

    name: str | None = Field(default=None, min_length=1, max_length=1024)
    tags: list[Tag] | None = Field(default=None, max_length=256)
    collections: list[Tag] | None = Field(default=None, max_length=64)


class BulkLabels(RequestModel):
    """Tags and collections to add to and remove from several assets at once (one transaction)."""

    ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=1000)
    add: list[Tag] = Field(default_factory=list, max_length=64)
    remove: list[Tag] = Field(default_factory=list, max_length=64)
    add_collections: list[Tag] = Field(default_factory=list, max_length=64)
    remove_collections: list[Tag] = Field(default_factory=list, max_length=64)


class AssetList(BaseModel):
    """The assets a bulk operation changed."""

    items: list[AssetOut]


class UploadFields(RequestModel):
    """Form fields sent with the files."""

    collection: str = Field(default="default", min_length=1, max_length=256)
    tags: list[Tag] = Field(default_factory=list, max_length=32)


class UploadItem(BaseModel):
    """What happened to one uploaded file."""

    name: str
    status: Literal["created", "existing", "queued"] = Field(
        description="`created`; `existing` when the same content was already in the collection; `queued` for media "
        "indexed by the returned job"
    )
    asset: AssetOut | None


class UploadResult(BaseModel):
    """The uploaded files, in order, and the job indexing the audio/video among them (if any)."""

    items: list[UploadItem]
    job: JobOut | None


def _load(asset_id: str, settings: Settings) -> Asset:
    from index.services.assets import AssetNotFound, get_asset

    try:
        return get_asset(settings, asset_id, include_trashed=False)
    except AssetNotFound as exc:
        raise ProblemError("not-found", str(exc)) from None


def _slug(exc: Exception) -> str:
    from index.content import AssetMissing

    return "not-found" if isinstance(exc, AssetMissing) else "content-unavailable"


def _stream(opened: OpenContent, range_header: str | None, etag: str | None) -> Stream:
    media_type = opened.mime or mimetypes.guess_type(opened.name)[0] or "application/octet-stream"
    return file_response(
        opened.handle, opened.size, media_type, filename=opened.name, range_header=range_header, etag=etag
    )


def _encode_cursor(asset: Asset) -> str:
    raw = f"{asset.created_at.isoformat()}|{asset.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, asset_id = raw.partition("|")
        if not asset_id:
            raise ValueError("no id")
        return datetime.fromisoformat(created), asset_id
    except (ValueError, UnicodeDecodeError):
        raise ProblemError(
            "validation-error", "cursor is not one this API returned", errors=[("query.cursor", "invalid cursor")]
        ) from None


class AssetController(Controller):
    """Browse, fetch, upload and delete assets."""

    path = "/assets"
    tags = ["assets"]

    @get(
        "/",
        summary="List assets",
        opt={"scope": "search"},
        responses=problem_responses(401, 403, 422, 429),
        sync_to_thread=True,
    )
    def list_assets(
        self,
        request: Request[Any, Any, Any],
        kind: Kind | None = None,
        collection: Annotated[str | None, Parameter(min_length=1, max_length=256)] = None,
        tag: Annotated[list[str] | None, Parameter(description="Required tag (repeatable).", max_items=32)] = None,
        source: Source | None = None,
        status: AssetStatus | None = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=512)] = None,
        offset: Annotated[int | None, Parameter(ge=0, le=1_000_000, description="Instead of cursor.")] = None,
        trash: Annotated[bool, Parameter(description="true: list the trash instead of live assets.")] = False,
    ) -> AssetPage:
        """Return assets newest first, filtered; page with `cursor` (preferred) or `offset`."""
        from index.services.assets import AssetFilters, list_assets

        if cursor is not None and offset is not None:
            raise ProblemError(
                "validation-error", "give cursor or offset, not both", errors=[("query.offset", "not with cursor")]
            )
        state: ApiState = request.app.state.api
        filters = AssetFilters(kind, collection, list(tag or []), source, status, trash=trash)
        after = _decode_cursor(cursor) if cursor is not None else None
        rows = list_assets(state.settings, filters, limit + 1, after, offset or 0)
        base = str(request.base_url)
        is_admin = principal(request).is_admin
        items = [asset_out(a, state, base, is_admin) for a in rows[:limit]]
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return AssetPage(items=items, next_cursor=next_cursor)

    @get(
        "/{asset_id:str}",
        summary="Get an asset",
        opt={"scope": "search"},
        responses=problem_responses(401, 403, 404, 429),
        sync_to_thread=True,
    )
    def get_asset(self, request: Request[Any, Any, Any], asset_id: str) -> AssetOut:
        """Return one asset with signed content and thumbnail URLs."""
        state: ApiState = request.app.state.api
        return asset_out(_load(asset_id, state.settings), state, str(request.base_url), principal(request).is_admin)

    @get(
        "/{asset_id:str}/content",
        summary="Download an asset's content",
        opt={"scope": "search", "signed": True},
        responses=problem_responses(401, 403, 404, 416, 429),
        operation_class=operation(binary_responses={200: CONTENT_TYPES, 206: CONTENT_TYPES}),
        security=[{}],
        sync_to_thread=True,
    )
    def content(
        self,
        request: Request[Any, Any, Any],
        asset_id: str,
        expires: Annotated[int | None, SIGNED_QUERY["expires"]] = None,
        signature: Annotated[str | None, SIGNED_QUERY["signature"]] = None,
        range_header: Annotated[str | None, Parameter(header="Range", required=False)] = None,
    ) -> Stream:
        """Stream the original file; honours a single `Range: bytes=...` (206); needs a key or a signed URL.

        A file referenced in place is served only while it is the very file that was indexed.
        """
        from index.content import ContentUnavailable, open_content

        state: ApiState = request.app.state.api
        try:
            opened = open_content(state.settings, asset_id)
        except ContentUnavailable as exc:
            raise ProblemError(_slug(exc), str(exc)) from None
        return _stream(opened, range_header, opened.sha256)

    @get(
        "/{asset_id:str}/thumbnail",
        summary="Download an asset's thumbnail",
        opt={"scope": "search", "signed": True},
        responses=problem_responses(401, 403, 404, 416, 429),
        operation_class=operation(binary_responses={200: ("image/jpeg",), 206: ("image/jpeg",)}),
        security=[{}],
        sync_to_thread=True,
    )
    def thumbnail(
        self,
        request: Request[Any, Any, Any],
        asset_id: str,
        expires: Annotated[int | None, SIGNED_QUERY["expires"]] = None,
        signature: Annotated[str | None, SIGNED_QUERY["signature"]] = None,
        range_header: Annotated[str | None, Parameter(header="Range", required=False)] = None,
    ) -> Stream:
        """Stream the JPEG thumbnail; needs a key or a signed URL."""
        from index.content import ContentUnavailable, open_thumbnail

        state: ApiState = request.app.state.api
        try:
            opened = open_thumbnail(state.settings, asset_id)
        except ContentUnavailable as exc:
            raise ProblemError(_slug(exc), str(exc)) from None
        return _stream(opened, range_header, None)

    @patch(
        "/{asset_id:str}",
        summary="Rename an asset, or replace its tags or collections",
        opt={"scope": "ingest"},
        responses=problem_responses(400, 401, 403, 404, 422, 429),
        sync_to_thread=True,
    )
    def patch_asset(self, request: Request[Any, Any, Any], asset_id: str, data: AssetPatch) -> AssetOut:
        """Change an asset's name, tags or collections; return it."""
        from index.services.assets import AssetNotFound, update_asset

        state: ApiState = request.app.state.api
        try:
            asset = update_asset(state.settings, asset_id, name=data.name, tags=data.tags, collections=data.collections)
        except AssetNotFound as exc:
            raise ProblemError("not-found", str(exc)) from None
        return asset_out(asset, state, str(request.base_url), principal(request).is_admin)

    @post(
        "/labels",
        status_code=200,
        summary="Add and remove tags and collections on many assets",
        opt={"scope": "ingest"},
        responses=problem_responses(400, 401, 403, 404, 422, 429),
        sync_to_thread=True,
    )
    def bulk_labels(self, request: Request[Any, Any, Any], data: BulkLabels) -> AssetList:
        """Apply the changes to every asset, or to none when an id is unknown (404 names it)."""
        from index.services.assets import AssetNotFound, relabel

        state: ApiState = request.app.state.api
        try:
            assets = relabel(
                state.settings,
                data.ids,
                add_tags=data.add,
                remove_tags=data.remove,
                add_collections=data.add_collections,
                remove_collections=data.remove_collections,
            )
        except AssetNotFound as exc:
            raise ProblemError("not-found", str(exc)) from None
        base = str(request.base_url)
        return AssetList(items=[asset_out(a, state, base, principal(request).is_admin) for a in assets])

    @delete(
        "/{asset_id:str}",
        summary="Move an asset to the trash",
        opt={"scope": "ingest"},
        responses=problem_responses(401, 403, 404, 429),
        sync_to_thread=True,
    )
    def delete_asset(self, request: Request[Any, Any, Any], asset_id: str) -> None:
        """Move an asset to the trash: hidden from search at once, purged after `assets.trash_days`."""
        from index.services.assets import AssetNotFound, trash_assets

        state: ApiState = request.app.state.api
        _load(asset_id, state.settings)  # already in the trash: 404, as for any asset the API no longer shows
        try:
            trash_assets(state.settings, [asset_id])
        except AssetNotFound:
            raise ProblemError("not-found", f"no asset with id {asset_id!r}") from None

    @post(
        "/",
        status_code=201,
        summary="Upload files",
        opt={"scope": "ingest", "accepts": (MULTIPART,)},
        operation_class=operation(
            request_body={MULTIPART: form_schema(UploadFields, {"files": True}, required=("files",))}
        ),
        responses={
            202: ResponseSpec(UploadResult, description="Audio/video queued for indexing by `job`"),
            **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
        },
        request_max_body_size=None,  # read_multipart enforces the per-file limit while streaming
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        idempotency_key: Annotated[str | None, IDEMPOTENCY_HEADER] = None,
    ) -> Response[UploadResult]:
        """Store and index uploaded files: images at once (201), audio/video by a job (202)."""
        state: ApiState = request.app.state.api
        limit = state.settings.api.max_upload_bytes
        announced = request.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > MAX_UPLOAD_FILES * limit + 1024**2:
            raise ProblemError("payload-too-large", f"each file may be at most {limit:,} bytes")
        form = await read_multipart(
            request,
            tmp_root=state.settings.resolved_data_dir() / "tmp",
            max_file_bytes=limit,
            file_fields=frozenset({"files"}),
            max_files=MAX_UPLOAD_FILES,
        )
        try:
            fields = form_model(form, UploadFields, lists=frozenset({"tags"}))
            if not form.files:
                raise ProblemError("validation-error", "no files uploaded", errors=[("files", "at least one file")])
            who = principal(request)
            result = await anyio.to_thread.run_sync(
                _store_uploads, state, form.files, fields, who, idempotency_key, str(request.base_url)
            )
        finally:
            form.cleanup()
        status = 202 if result.job is not None else 201
        headers = {"Location": result.job.url} if result.job is not None else {}
        return Response(result, status_code=status, headers=headers)


def _kind(file: UploadedFile) -> str:
    from index.ingest.discover import kind_for

    kind = kind_for(Path(file.filename))
    if kind is None:
        raise ProblemError(
            "unsupported-media-type",
            f"{file.filename!r}: only image, audio and video files are accepted",
        )
    return kind


def _check_decodable(file: UploadedFile, kind: str, settings: Settings) -> str | None:
    """Return why a file cannot be used, or None; nothing is stored before every file passes."""
    if file.size == 0:
        return "empty file (0 bytes)"
    if kind == "image":
        from index.ingest.images import decode_slot, open_image

        limits = settings.ingest
        try:
            with decode_slot(limits.max_concurrent_decodes):
                open_image(file.path, limits.max_image_pixels, max_decoded_bytes=limits.max_decoded_bytes)
        except ValueError as exc:
            return str(exc)
        return None
    from index.media.probe import probe

    try:
        probe(file.path, settings.media)
    except ValueError as exc:  # MediaError is a ValueError with a readable reason
        return str(exc)
    return None


def _store_uploads(
    state: ApiState,
    files: list[UploadedFile],
    fields: UploadFields,
    who: Any,
    idempotency_key: str | None,
    base_url: str,
) -> UploadResult:
    from index.ingest.store import store_file

    settings = state.settings
    kinds = [_kind(f) for f in files]
    problems = [
        (f"files.{i}", f"{f.filename}: {reason}")
        for i, f in enumerate(files)
        if (reason := _check_decodable(f, kinds[i], settings)) is not None
    ]
    if problems:
        raise ProblemError("corrupt-upload", "; ".join(m for _, m in problems), errors=problems)
    items: list[UploadItem | None] = [None] * len(files)
    staged: list[dict[str, Any]] = []
    staging = settings.resolved_data_dir() / "uploads" / uuid.uuid4().hex
    for i, (file, kind) in enumerate(zip(files, kinds, strict=True)):
        if kind != "image":
            staging.mkdir(parents=True, exist_ok=True)
            target = staging / f"{i}{Path(file.filename).suffix.lower()}"
            shutil.move(file.path, target)
            staged.append(
                {"path": str(target), "name": file.filename, "collection": fields.collection, "tags": fields.tags}
            )
            items[i] = UploadItem(name=file.filename, status="queued", asset=None)
            continue
        outcome = store_file(
            file.path,
            name=file.filename,
            source="uploaded",
            collection=fields.collection,
            tags=fields.tags,
            settings=settings,
        )
        if outcome.status == "failed" or outcome.asset_id is None:
            raise ProblemError(
                "corrupt-upload", f"{file.filename}: {outcome.reason}", errors=[(f"files.{i}", str(outcome.reason))]
            )
        status: Literal["created", "existing"] = "created" if outcome.status == "indexed" else "existing"
        items[i] = UploadItem(
            name=file.filename,
            status=status,
            asset=asset_out(_load(outcome.asset_id, settings), state, base_url, who.is_admin),
        )
    job: JobOut | None = None
    if staged:
        try:
            submitted = submit_job(
                state, who, "ingest", {"uploads": staged}, queue="ingest", idempotency_key=idempotency_key
            )
        except ProblemError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        job = job_out(submitted)
    return UploadResult(items=[item for item in items if item is not None], job=job)
