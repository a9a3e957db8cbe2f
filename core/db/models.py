"""SQLAlchemy models: assets (with their locations, collections and tags), segments and vectors, the change log,
jobs, webhook deliveries and API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.db.types import UTCDateTime

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY; PostgreSQL needs BIGINT for int64 ids.
BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_uuid() -> str:
    """Return a random hex id for assets and jobs."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base for every Sensorium table."""

    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Asset(Base):
    """One media content (sha256 unique in the instance): ingested in place, uploaded, or generated."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_uuid)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(16), default="ingested")
    name: Mapped[str] = mapped_column(String(1024))
    mime: Mapped[str | None] = mapped_column(String(128), nullable=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # pending (claimed by an ingest that is decoding it) | indexed | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # While pending: "host:pid" of the ingest that claimed the content before decoding it.
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Set while the asset is in the trash: hidden from search, its vectors out of the index, purged later.
    trashed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    tag_rows: Mapped[list[AssetTag]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", lazy="selectin"
    )
    collection_rows: Mapped[list[AssetCollection]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", lazy="selectin"
    )
    locations: Mapped[list[AssetLocation]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", lazy="selectin", order_by="AssetLocation.id"
    )
    segments: Mapped[list[Segment]] = relationship(back_populates="asset", cascade="all, delete-orphan")

    @property
    def tags(self) -> list[str]:
        """Return the asset's tags, sorted."""
        return sorted(row.tag for row in self.tag_rows)

    @property
    def collections(self) -> list[str]:
        """Return the collections the asset belongs to, sorted."""
        return sorted(row.collection for row in self.collection_rows)

    @property
    def live_locations(self) -> list[AssetLocation]:
        """Return the locations not flagged as changed on disk, oldest first."""
        return [loc for loc in self.locations if not loc.needs_scan]

    @property
    def uri(self) -> str | None:
        """Return the oldest live path the content is referenced at in place, or None."""
        return next((loc.path for loc in self.live_locations if loc.path), None)

    @property
    def blob_key(self) -> str | None:
        """Return the blob-store key holding the content, or None when it is only referenced in place."""
        return next((loc.blob_key for loc in self.locations if loc.blob_key), None)


class AssetLocation(Base):
    """Where an asset's content lives: a path in a library (with what it was at the last scan) or a blob key."""

    __tablename__ = "asset_locations"
    __table_args__ = (UniqueConstraint("asset_id", "blob_key", name="uq_asset_locations_blob"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    library: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # A path holds one content at a time, so it belongs to one asset.
    path: Mapped[str | None] = mapped_column(Text, nullable=True, unique=True)
    blob_key: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    inode: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    device: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set when the file no longer matches what was recorded (seen when serving it); the next scan looks again.
    needs_scan: Mapped[bool] = mapped_column(Boolean, default=False)
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    asset: Mapped[Asset] = relationship(back_populates="locations")


class AssetCollection(Base):
    """An asset's membership of a collection (many-to-many: one content may sit in several)."""

    __tablename__ = "asset_collections"

    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    collection: Mapped[str] = mapped_column(String(256), primary_key=True, index=True)

    asset: Mapped[Asset] = relationship(back_populates="collection_rows")


class AssetAlias(Base):
    """An asset id merged into another: old job results, provenance and signed URLs resolve through it."""

    __tablename__ = "asset_aliases"

    old_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AssetTag(Base):
    """A tag on an asset (a table, not a JSON list, so filters run in SQL)."""

    __tablename__ = "asset_tags"

    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(256), primary_key=True, index=True)

    asset: Mapped[Asset] = relationship(back_populates="tag_rows")


class Segment(Base):
    """A searchable piece of an asset; its id is also its FAISS id, and it holds its own vector."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    t_start: Mapped[float | None] = mapped_column(Float, nullable=True)
    t_end: Mapped[float | None] = mapped_column(Float, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_id: Mapped[str] = mapped_column(String(512), index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    # Per-kind details: an OCR line's box and confidence, a scene's picture time.
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)

    asset: Mapped[Asset] = relationship(back_populates="segments")


class AssetPass(Base):
    """A processing pass (e.g. ``ocr``) that has finished for an asset: passes resume from what is missing."""

    __tablename__ = "asset_passes"

    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TextEntry(Base):
    """Text that full-text search matches: one row per transcript segment, one per asset (name and tags)."""

    __tablename__ = "text_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    body: Mapped[str] = mapped_column(Text)


class ChangeLog(Base):
    """Append-only record of index additions and deletions, written in the transaction that made them."""

    __tablename__ = "change_log"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    segment_id: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LibraryState(Base):
    """Small key/value facts about the library (e.g. the model every vector comes from)."""

    __tablename__ = "library_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Job(Base):
    """Long-running work (generation, ingest, reindex); the table is the truth for its status."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    celery_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(256), nullable=True, unique=True)
    owner_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # Set on the chunks of a fanned-out job (distributed ingest); the parent's status aggregates theirs.
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Running: when the attempt's lease ends unless renewed. Queued for a retry: when the retry is due (a retry
    # message that no worker claimed a lease after this was lost with its worker, and the reaper sends another).
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookDelivery(Base):
    """A job's callback waiting to be delivered (the outbox): kept until it arrives or its attempts run out,
    so a delivery whose process died is sent by another process after the restart."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_uuid)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # While a sender holds it: the sender's attempt is under way until then (a dead sender's claim runs out).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiKey(Base):
    """An API key: only the sha256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(256))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
