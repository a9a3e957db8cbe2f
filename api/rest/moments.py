"""GET /v1/assets/{id}/segments/{segment_id}/thumbnail: the matched moment's picture (search results link it)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Stream

from api.rest.assets import SIGNED_QUERY
from api.rest.content import file_response
from api.rest.openapi import operation
from api.rest.problems import ProblemError, problem_responses
from api.rest.state import ApiState


class MomentController(Controller):
    """Thumbnails of segments (scenes, spectrogram windows, transcript moments)."""

    path = "/assets"
    tags = ["assets"]

    @get(
        "/{asset_id:str}/segments/{segment_id:int}/thumbnail",
        summary="Download the thumbnail of a search result's moment",
        opt={"scope": "search", "signed": True},
        responses=problem_responses(401, 403, 404, 416, 429),
        operation_class=operation(binary_responses={200: ("image/jpeg",), 206: ("image/jpeg",)}),
        security=[{}],
        sync_to_thread=True,
    )
    def segment_thumbnail(
        self,
        request: Request[Any, Any, Any],
        asset_id: str,
        segment_id: int,
        expires: Annotated[int | None, SIGNED_QUERY["expires"]] = None,
        signature: Annotated[str | None, SIGNED_QUERY["signature"]] = None,
        range_header: Annotated[str | None, Parameter(header="Range", required=False)] = None,
    ) -> Stream:
        """Stream the JPEG of the segment's scene (or the asset's thumbnail when the segment has no picture)."""
        from index.content import AssetMissing, ContentUnavailable
        from index.moments import open_moment_thumbnail

        state: ApiState = request.app.state.api
        try:
            opened = open_moment_thumbnail(state.settings, asset_id, segment_id)
        except ContentUnavailable as exc:
            raise ProblemError(
                "not-found" if isinstance(exc, AssetMissing) else "content-unavailable", str(exc)
            ) from None
        return file_response(opened.handle, opened.size, "image/jpeg", filename=opened.name, range_header=range_header)
