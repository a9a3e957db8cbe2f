"""Response models shared by several controllers: assets and search results."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.rest.uris import visible_uri

if TYPE_CHECKING:
    from api.rest.state import ApiState
    from core.db.models import Asset

Kind = Literal["image", "audio", "video"]
Source = Literal["ingested", "uploaded", "generated"]
AssetStatus = Literal["pending", "indexed", "failed"]


def nul_field(value: Any, path: str = "") -> str | None:
    """Return the dotted path of the first string holding a NUL character (PostgreSQL cannot store one), or None."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items()]
        if any(isinstance(k, str) and "\x00" in k for k, _ in items):
            return path or "body"
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    for key, item in items:
        found = nul_field(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields and NUL characters are refused, naming the field."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if nul_field(value) is not None:
            raise ValueError("must not contain NUL characters")
        return value


class AssetOut(BaseModel):
    """One stored asset; URLs are signed and expire (``url_ttl_s``)."""

    id: str
    name: str = Field(description="Original file name.")
    kind: str
    source: str
    collection: str = Field(description="The first of `collections` (kept for older clients).")
    collections: list[str]
    tags: list[str]
    mime: str | None
    bytes: int
    width: int | None
    height: int | None
    duration: float | None
    status: str
    error: str | None
    sha256: str
    uri: str | None = Field(
        description="Path for files referenced in place (in full for admin keys, else relative to its ingest root), "
        "else the blob key."
    )
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    trashed_at: datetime | None = Field(default=None, description="Set while the asset is in the trash.")
    content_url: str
    thumbnail_url: str | None


class SegmentOut(BaseModel):
    """The best-matching segment of an asset."""

    id: int
    kind: str
    t_start: float | None
    t_end: float | None
    text: str | None
    thumbnail_url: str | None = Field(default=None, description="The matched moment's picture (scene frame).")


class SearchHit(BaseModel):
    """One asset in search results (the shape shared by CLI, REST and agent)."""

    asset_id: str
    name: str
    uri: str | None = Field(description="As in an asset: in full for admin keys, else relative to its ingest root.")
    kind: str
    collection: str | None = None
    score: float | None = Field(description="Cosine similarity of the asset's best vector match.")
    fused_score: float | None
    segment: SegmentOut
    thumbnail_url: str | None
    content_url: str | None = Field(description="Signed; for audio and video it ends in `#t=start,end`.")


def asset_out(asset: Asset, state: ApiState, base_url: str, is_admin: bool) -> AssetOut:
    """Return the public view of an asset row, with signed URLs; ``uri`` in full only for admin keys."""
    return AssetOut(
        id=asset.id,
        name=asset.name,
        kind=asset.kind,
        source=asset.source,
        collection=(asset.collections or ["default"])[0],
        collections=asset.collections,
        tags=asset.tags,
        mime=asset.mime,
        bytes=asset.bytes,
        width=asset.width,
        height=asset.height,
        duration=asset.duration,
        status=asset.status,
        error=asset.error,
        sha256=asset.sha256,
        uri=visible_uri(asset.uri or asset.blob_key, is_admin, state.settings.ingest.allowed_roots),
        metadata=dict(asset.meta or {}),
        created_at=asset.created_at,
        updated_at=asset.updated_at,
        trashed_at=asset.trashed_at,
        content_url=state.asset_url(base_url, asset.id, "content"),
        thumbnail_url=state.asset_url(base_url, asset.id, "thumbnail") if asset.thumbnail_key else None,
    )
