"""API key management over HTTP (admin only); the CLI offers the same through ``sensorium keys``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from pydantic import BaseModel, ConfigDict, Field

from api.rest.auth import principal
from api.rest.problems import ProblemError, problem_responses
from api.rest.schemas import RequestModel
from api.rest.state import ApiState

Scope = Literal["search", "generate", "ingest", "admin"]


class KeyOut(BaseModel):
    """An API key as listed (never its secret)."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class NewKey(RequestModel):
    """A key to create."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=256, pattern=r"\S")
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=4)]


class CreatedKeyOut(BaseModel):
    """A new key; `secret` is shown only in this response."""

    id: str
    name: str
    scopes: list[str]
    secret: str


def _out(info: Any) -> KeyOut:
    return KeyOut(
        id=info.id,
        name=info.name,
        scopes=list(info.scopes),
        created_at=info.created_at,
        last_used_at=info.last_used_at,
        revoked=info.revoked,
    )


class KeyController(Controller):
    """Create, list and revoke API keys."""

    path = "/keys"
    tags = ["keys"]
    opt = {"scope": "admin"}

    @get("/", summary="List API keys", responses=problem_responses(401, 403, 429), sync_to_thread=True)
    def list_keys(self, request: Request[Any, Any, Any]) -> list[KeyOut]:
        """Return every key, revoked ones included."""
        from core.apikeys import list_keys

        state: ApiState = request.app.state.api
        return [_out(info) for info in list_keys(state.settings)]

    @post(
        "/",
        status_code=201,
        summary="Create an API key",
        opt={"accepts": ("application/json",)},
        responses=problem_responses(400, 401, 403, 413, 415, 422, 429),
        sync_to_thread=True,
    )
    def create_key(self, request: Request[Any, Any, Any], data: NewKey) -> CreatedKeyOut:
        """Create a key and return its secret once."""
        from core.apikeys import create_key

        state: ApiState = request.app.state.api
        created = create_key(data.name, data.scopes, state.settings)
        return CreatedKeyOut(
            id=created.info.id, name=created.info.name, scopes=list(created.info.scopes), secret=created.secret
        )

    @post(
        "/{key_id:str}/revoke",
        status_code=200,
        summary="Revoke an API key",
        responses=problem_responses(401, 403, 404, 409, 429),
        sync_to_thread=True,
    )
    def revoke_key(self, request: Request[Any, Any, Any], key_id: str) -> KeyOut:
        """Revoke a key; its requests get 401 from now on."""
        from core.apikeys import KeyNotFound, revoke_key

        state: ApiState = request.app.state.api
        if principal(request).key_id == key_id:
            raise ProblemError("conflict", "a key cannot revoke itself; use another admin key or the CLI")
        try:
            return _out(revoke_key(key_id, state.settings))
        except KeyNotFound:
            raise ProblemError("not-found", f"no API key with id {key_id!r}") from None
