"""POST /v1/search: by text or example asset (JSON), or by an uploaded image or audio clip (multipart)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import anyio.to_thread
from litestar import Controller, Request, post
from pydantic import BaseModel, Field, model_validator

from api.rest.auth import principal
from api.rest.bodies import (
    form_model,
    media_type,
    parse_json_model,
    read_limited,
    read_multipart,
)
from api.rest.openapi import form_schema, json_schema, operation
from api.rest.problems import ProblemError, problem_responses
from api.rest.schemas import Kind, RequestModel, SearchHit
from api.rest.state import ApiState
from api.rest.uris import visible_uri
from core.metrics import observe_search
from index.offline import search_warnings

JSON = "application/json"
MULTIPART = "multipart/form-data"
MAX_QUERY_FILE_BYTES = 50 * 1024**2
Tag = Annotated[str, Field(min_length=1, max_length=256)]


class SearchFields(RequestModel):
    """Query, filters and paging; with a multipart body the query may be an `image` or `audio` file instead."""

    text: str | None = Field(default=None, min_length=1, max_length=2000, description="Text query.")
    asset_id: str | None = Field(default=None, min_length=1, max_length=64, description="More like this asset.")
    kind: Kind | None = Field(default=None, description="Only assets of this kind.")
    collection: str | None = Field(default=None, min_length=1, max_length=256)
    tags: list[Tag] = Field(default_factory=list, max_length=32, description="Assets must carry every tag.")
    min_score: float | None = Field(default=None, ge=-1, le=1, allow_inf_nan=False)
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=10_000)
    mode: Literal["vector", "text", "hybrid"] = Field(
        default="hybrid",
        description="Text queries: `vector` (CLIP cosine), `text` (full-text on transcripts, names, tags) or `hybrid` "
        "(both, fused by reciprocal rank into `fused_score`). Queries by example always use vectors.",
    )


class SearchBody(SearchFields):
    """A JSON search: exactly one of `text` or `asset_id`."""

    @model_validator(mode="after")
    def _one_query(self) -> SearchBody:
        if (self.text is None) == (self.asset_id is None):
            raise ValueError("give exactly one of text or asset_id (or upload an image as multipart)")
        return self


class SearchWarning(BaseModel):
    """Something that makes these results less trustworthy (e.g. `random-weights`)."""

    code: str
    message: str


class SearchResponse(BaseModel):
    """One page of results, best first, with warnings (e.g. while the encoder runs on random weights)."""

    results: list[SearchHit]
    limit: int
    offset: int
    warnings: list[SearchWarning] = Field(default_factory=list)


_REQUEST_BODY = {
    JSON: json_schema(SearchBody),
    MULTIPART: form_schema(SearchFields, {"image": False, "audio": False}),
}


class SearchController(Controller):
    """Search the library."""

    path = "/search"
    tags = ["search"]

    @post(
        "/",
        status_code=200,
        summary="Search by text, image, audio or example asset",
        opt={"scope": "search", "accepts": (JSON, MULTIPART)},
        operation_class=operation(request_body=_REQUEST_BODY),
        responses=problem_responses(400, 401, 403, 404, 413, 415, 422, 429, 503),
        request_max_body_size=None,  # read_limited / read_multipart enforce their own limits
    )
    async def search(self, request: Request[Any, Any, Any]) -> SearchResponse:
        """Return assets ranked by similarity to the text, image, audio clip or example asset."""
        state: ApiState = request.app.state.api
        files: dict[str, bytes] = {}
        if media_type(request) == MULTIPART:
            form = await read_multipart(
                request,
                tmp_root=state.settings.resolved_data_dir() / "tmp",
                max_file_bytes=min(state.settings.api.max_upload_bytes, MAX_QUERY_FILE_BYTES),
                file_fields=frozenset({"image", "audio"}),
                max_files=1,
            )
            try:
                fields = form_model(form, SearchFields, lists=frozenset({"tags"}))
                files = {f.field: f.path.read_bytes() for f in form.files}
            finally:
                form.cleanup()
            given = len(files) + sum(x is not None for x in (fields.text, fields.asset_id))
            if given != 1:
                raise ProblemError(
                    "validation-error",
                    "give exactly one of text, asset_id, an image file or an audio file",
                    errors=[("image", "give exactly one of text, asset_id, image or audio")],
                )
        else:
            fields = parse_json_model(await read_limited(request, state.settings.api.max_json_bytes), SearchBody)
        results = await anyio.to_thread.run_sync(_run, state, fields, files)
        base = str(request.base_url)
        hits = [
            SearchHit.model_validate(r.to_dict(lambda asset_id, what: state.asset_url(base, asset_id, what)))
            for r in results
        ]
        is_admin, roots = principal(request).is_admin, state.settings.ingest.allowed_roots
        for hit, result in zip(hits, results, strict=True):
            hit.uri = visible_uri(hit.uri, is_admin, roots)
            if result.thumbnail_key is None:
                hit.thumbnail_url = None
        warnings = [SearchWarning(**w) for w in search_warnings(state.settings.encoder)]
        return SearchResponse(results=hits, limit=fields.limit, offset=fields.offset, warnings=warnings)


def _run(state: ApiState, fields: SearchFields, files: dict[str, bytes]) -> list[Any]:
    from index.search import SearchFilters, SearchRequest, UnknownAsset, search

    request = SearchRequest(
        text=fields.text,
        image=files.get("image"),
        audio=files.get("audio"),
        asset_id=fields.asset_id,
        filters=SearchFilters(
            kinds=[fields.kind] if fields.kind else [],
            collections=[fields.collection] if fields.collection else [],
            tags=list(fields.tags),
        ),
        min_score=fields.min_score,
        limit=fields.limit,
        offset=fields.offset,
        mode=fields.mode,
        micro_batch=True,  # concurrent text queries share one text-encoder batch
    )
    started = time.perf_counter()
    try:
        results = search(request, state.settings)
    except UnknownAsset as exc:
        raise ProblemError("not-found", str(exc)) from None
    mode = fields.mode if fields.text is not None else "vector"  # as index.search runs it: by example = vectors
    observe_search(mode, _query_kind(fields, files), time.perf_counter() - started)
    return results


def _query_kind(fields: SearchFields, files: dict[str, bytes]) -> str:
    if fields.text is not None:
        return "text"
    if fields.asset_id is not None:
        return "asset"
    return next(iter(files))  # "image" or "audio"
