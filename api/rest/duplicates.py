"""Duplicates: groups per tier (paged), an asset's group, and keeping one copy of a group."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from pydantic import BaseModel, Field

from api.rest.problems import ProblemError, problem_responses
from api.rest.schemas import RequestModel
from api.rest.state import ApiState

Tier = Literal["exact", "near", "similar"]


class DuplicateMember(BaseModel):
    """One copy in a group; ``distance`` to the best copy is null for the best itself."""

    id: str
    name: str
    uri: str | None
    kind: str
    collections: list[str]
    tags: list[str]
    width: int | None
    height: int | None
    bytes: int
    created_at: str
    distance: float | None = Field(description="Hamming bits (near), 1 - cosine (similar), 0 (exact)")
    variant_of: str | None = Field(description="the best asset this copy was linked to at ingest")
    differences: dict[str, Any] | None = Field(default=None, description="size, bytes and dates against the best")


class DuplicateGroupOut(BaseModel):
    """A group, best copy first (largest, then oldest, then most tagged)."""

    tier: Tier
    best_id: str
    size: int
    members: list[DuplicateMember]


class DuplicatePage(BaseModel):
    """One page of groups, largest groups first."""

    groups: list[DuplicateGroupOut]
    total: int
    limit: int
    offset: int


class AssetDuplicates(BaseModel):
    """The group an asset belongs to, or null."""

    group: DuplicateGroupOut | None


class KeepRequest(RequestModel):
    """Keep one copy: send the others to the trash and/or give the kept one their tags and collections."""

    keep: str = Field(min_length=1, max_length=64, description="asset id of the copy to keep")
    tier: Tier = "near"
    trash_others: bool = True
    merge_labels: bool = Field(default=False, description="give the kept copy the others' tags and collections")


class KeepResult(BaseModel):
    """What was done."""

    kept: str
    trashed: list[str]
    added_labels: list[str] = Field(description="tags, and collections as `collection:NAME`, the kept copy gained")


def _problem(exc: Exception) -> ProblemError:
    from index.duplicates.service import TierUnavailable, UnknownAsset

    if isinstance(exc, UnknownAsset):
        return ProblemError("not-found", str(exc))
    if isinstance(exc, TierUnavailable):
        return ProblemError("conflict", str(exc))
    return ProblemError("validation-error", str(exc))


class DuplicateController(Controller):
    """Near-duplicate groups and acting on them."""

    path = "/"
    tags = ["duplicates"]

    @get(
        "/duplicates",
        summary="List duplicate groups",
        opt={"scope": "search"},
        responses=problem_responses(401, 403, 409, 422, 429),
        sync_to_thread=True,
    )
    def list_groups(
        self,
        request: Request[Any, Any, Any],
        tier: Tier = "near",
        collection: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        offset: Annotated[int, Parameter(ge=0)] = 0,
    ) -> DuplicatePage:
        """Return a page of duplicate groups of a tier."""
        from index.duplicates.service import DuplicateError, find_groups

        state: ApiState = request.app.state.api
        try:
            groups = find_groups(tier, collection, state.settings)
        except DuplicateError as exc:
            raise _problem(exc) from None
        page = [DuplicateGroupOut.model_validate(g.to_dict()) for g in groups[offset : offset + limit]]
        return DuplicatePage(groups=page, total=len(groups), limit=limit, offset=offset)

    @get(
        "/assets/{asset_id:str}/duplicates",
        summary="The duplicate group of an asset",
        opt={"scope": "search"},
        responses=problem_responses(401, 403, 404, 409, 429),
        sync_to_thread=True,
    )
    def asset_group(self, request: Request[Any, Any, Any], asset_id: str, tier: Tier = "near") -> AssetDuplicates:
        """Return the group holding this asset (null when it has no duplicate)."""
        from index.duplicates.service import DuplicateError, group_of

        state: ApiState = request.app.state.api
        try:
            group = group_of(asset_id, tier, state.settings)
        except DuplicateError as exc:
            raise _problem(exc) from None
        return AssetDuplicates(group=DuplicateGroupOut.model_validate(group.to_dict()) if group else None)

    @post(
        "/duplicates/keep",
        status_code=200,
        summary="Keep one copy of a group",
        opt={"scope": "ingest"},
        responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
        sync_to_thread=True,
    )
    def keep(self, request: Request[Any, Any, Any], data: KeepRequest) -> KeepResult:
        """Keep one copy: the others go to the trash and/or give it their tags."""
        from index.duplicates.service import DuplicateError, act_on_group

        state: ApiState = request.app.state.api
        try:
            action = act_on_group(
                data.keep,
                trash_others=data.trash_others,
                merge_labels=data.merge_labels,
                tier=data.tier,
                settings=state.settings,
            )
        except DuplicateError as exc:
            raise _problem(exc) from None
        return KeepResult(**action.to_dict())
