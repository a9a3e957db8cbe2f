"""one asset per content: locations, many-to-many collections, aliases for merged ids, a trash

Databases made before this revision may hold one asset per (collection, content). This revision merges them:
the oldest asset of each content keeps the union of collections, tags and paths; the others become aliases,
and their segments leave every index through the change log. Merging needs `sensorium migrate` (which says to
back up first); an automatic upgrade refuses a database that holds duplicates.

Revision ID: 0007_assets_locations
Revises: 0003
"""

from __future__ import annotations

import os
import re
import stat
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0007_assets_locations"
down_revision = "0004_webhook_outbox"
branch_labels = None
depends_on = None

MERGE_FLAG = "merge_duplicates"
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


class MergeRequired(RuntimeError):
    """The database holds duplicate assets; merging them waits for `sensorium migrate`."""


def _create_tables() -> None:
    op.create_table(
        "asset_locations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("asset_id", sa.String(32), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("library", sa.String(256), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("blob_key", sa.String(128), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("inode", sa.BigInteger(), nullable=True),
        sa.Column("device", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("needs_scan", sa.Boolean(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("path", name="uq_asset_locations_path"),
        sa.UniqueConstraint("asset_id", "blob_key", name="uq_asset_locations_blob"),
    )
    op.create_index("ix_asset_locations_asset_id", "asset_locations", ["asset_id"])
    op.create_index("ix_asset_locations_blob_key", "asset_locations", ["blob_key"])
    op.create_table(
        "asset_collections",
        sa.Column("asset_id", sa.String(32), sa.ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("collection", sa.String(256), primary_key=True),
    )
    op.create_index("ix_asset_collections_collection", "asset_collections", ["collection"])
    op.create_table(
        "asset_aliases",
        sa.Column("old_id", sa.String(32), primary_key=True),
        sa.Column("asset_id", sa.String(32), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_asset_aliases_asset_id", "asset_aliases", ["asset_id"])


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _location(asset_id: str, path: str, size: int, sha256: str, now: datetime) -> dict[str, Any]:
    """Record a path with what is on disk now when it still looks like the ingested file (never hashed here)."""
    row: dict[str, Any] = {
        "asset_id": asset_id,
        "path": path,
        "blob_key": None,
        "size": None,
        "mtime_ns": None,
        "inode": None,
        "device": None,
        "sha256": sha256,
        "needs_scan": True,
        "scanned_at": None,
        "created_at": now,
    }
    try:
        info = os.lstat(path)
    except OSError:
        return row
    if stat.S_ISREG(info.st_mode) and info.st_size == size:
        row.update(
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            inode=_signed64(info.st_ino),
            device=_signed64(info.st_dev),
            needs_scan=False,
        )
    return row


def _asset_body(name: str, tags: list[str]) -> str:
    # The full-text row of an asset (index/fulltext.py's asset_body as of this revision).
    return " ".join([*_TOKEN.findall(PurePath(name).stem), *tags])


def _merge_and_locate(bind: sa.Connection) -> None:
    now = datetime.now(UTC)
    rows = (
        bind.execute(
            sa.text(
                "SELECT id, sha256, name, collection, uri, blob_key, bytes, status, created_at FROM assets "
                "ORDER BY sha256, CASE WHEN status = 'indexed' THEN 0 ELSE 1 END, created_at, id"
            )
        )
        .mappings()
        .all()
    )
    by_id = {row["id"]: row for row in rows}
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        groups[row["sha256"]].append(row)
    duplicates = sum(len(g) - 1 for g in groups.values())
    if duplicates and not context.config.attributes.get(MERGE_FLAG):
        raise MergeRequired(
            f"the database holds {duplicates} duplicate asset(s) (one content stored once per collection); "
            "back it up, then run `sensorium migrate` to merge them"
        )
    tags: dict[str, set[str]] = defaultdict(set)
    for asset_id, tag in bind.execute(sa.text("SELECT asset_id, tag FROM asset_tags")).tuples():
        tags[asset_id].add(tag)
    path_owner: dict[str, tuple[Any, str]] = {}  # a path holds one content: the newest asset that claims it
    for group in groups.values():
        keeper = group[0]
        for row in group:
            if row["uri"] and not row["blob_key"]:
                owner = path_owner.get(row["uri"])
                if owner is None or owner[0] < row["created_at"]:
                    path_owner[row["uri"]] = (row["created_at"], keeper["id"])
    for group in groups.values():
        _merge_group(bind, group, tags, now)
    for group in groups.values():
        keeper = group[0]
        blob_keys = list(dict.fromkeys(r["blob_key"] for r in group if r["blob_key"]))
        for key in blob_keys:
            bind.execute(
                sa.text(
                    "INSERT INTO asset_locations (asset_id, blob_key, size, sha256, needs_scan, created_at) "
                    "VALUES (:a, :k, :s, :h, :f, :t)"
                ),
                {"a": keeper["id"], "k": key, "s": keeper["bytes"], "h": keeper["sha256"], "f": False, "t": now},
            )
    # Oldest first, so that a content's first path gets the lowest location id (results show the oldest).
    for path, (_, asset_id) in sorted(path_owner.items(), key=lambda item: item[1][0]):
        keeper = by_id[asset_id]
        location = _location(asset_id, path, keeper["bytes"], keeper["sha256"], now)
        bind.execute(_LOCATIONS.insert(), [location])


_LOCATIONS = sa.table(
    "asset_locations",
    *(
        sa.column(name)
        for name in (
            "asset_id",
            "path",
            "blob_key",
            "size",
            "mtime_ns",
            "inode",
            "device",
            "sha256",
            "needs_scan",
            "scanned_at",
            "created_at",
        )
    ),
)


def _merge_group(bind: sa.Connection, group: list[Any], tags: dict[str, set[str]], now: datetime) -> None:
    keeper = group[0]
    keeper_id = keeper["id"]
    for collection in dict.fromkeys(r["collection"] for r in group):
        bind.execute(
            sa.text("INSERT INTO asset_collections (asset_id, collection) VALUES (:a, :c)"),
            {"a": keeper_id, "c": collection},
        )
    if len(group) == 1:
        return
    merged_tags = set().union(*(tags[r["id"]] for r in group))
    for tag in sorted(merged_tags - tags[keeper_id]):
        bind.execute(sa.text("INSERT INTO asset_tags (asset_id, tag) VALUES (:a, :t)"), {"a": keeper_id, "t": tag})
    bind.execute(
        sa.text("UPDATE text_entries SET body = :b WHERE asset_id = :a AND segment_id IS NULL"),
        {"b": _asset_body(keeper["name"], sorted(merged_tags)), "a": keeper_id},
    )
    for loser in group[1:]:
        loser_id = loser["id"]
        segment_ids = bind.execute(sa.text("SELECT id FROM segments WHERE asset_id = :a"), {"a": loser_id}).scalars()
        log = [{"s": sid, "t": now} for sid in segment_ids]
        if log:
            if bind.dialect.name == "postgresql":  # serialise with every other change-log writer
                bind.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x5E45_0001})
            bind.execute(sa.text("INSERT INTO change_log (segment_id, op, created_at) VALUES (:s, 'delete', :t)"), log)
        for table in ("text_entries", "segments", "asset_tags"):
            bind.execute(sa.text(f"DELETE FROM {table} WHERE asset_id = :a"), {"a": loser_id})
        bind.execute(
            sa.text("INSERT INTO asset_aliases (old_id, asset_id, created_at) VALUES (:o, :a, :t)"),
            {"o": loser_id, "a": keeper_id, "t": now},
        )
        bind.execute(
            sa.text("UPDATE asset_aliases SET asset_id = :a WHERE asset_id = :o"), {"a": keeper_id, "o": loser_id}
        )
        bind.execute(sa.text("DELETE FROM assets WHERE id = :a"), {"a": loser_id})


def upgrade() -> None:
    _create_tables()
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))
    _merge_and_locate(op.get_bind())
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index("ix_assets_kind_collection")
        batch_op.drop_index("ix_assets_sha256")
        batch_op.drop_constraint("uq_assets_collection_sha256", type_="unique")
        batch_op.drop_column("collection")
        batch_op.drop_column("uri")
        batch_op.drop_column("blob_key")
        batch_op.create_index("ix_assets_sha256", ["sha256"], unique=True)
        batch_op.create_index("ix_assets_kind", ["kind"], unique=False)
        batch_op.create_index("ix_assets_trashed_at", ["trashed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index("ix_assets_trashed_at")
        batch_op.drop_index("ix_assets_kind")
        batch_op.drop_index("ix_assets_sha256")
        batch_op.add_column(sa.Column("collection", sa.String(256), nullable=False, server_default="default"))
        batch_op.add_column(sa.Column("uri", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("blob_key", sa.String(128), nullable=True))
    bind = op.get_bind()
    # Merged assets stay merged: each keeps its alphabetically first collection and its oldest location.
    bind.execute(
        sa.text(
            "UPDATE assets SET collection = COALESCE((SELECT MIN(c.collection) FROM asset_collections c "
            "WHERE c.asset_id = assets.id), 'default'), "
            "uri = (SELECT l.path FROM asset_locations l WHERE l.asset_id = assets.id AND l.path IS NOT NULL "
            "ORDER BY l.id LIMIT 1), "
            "blob_key = (SELECT l.blob_key FROM asset_locations l WHERE l.asset_id = assets.id "
            "AND l.blob_key IS NOT NULL ORDER BY l.id LIMIT 1)"
        )
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_column("trashed_at")
        batch_op.drop_column("claimed_by")
        batch_op.create_unique_constraint("uq_assets_collection_sha256", ["collection", "sha256"])
        batch_op.create_index("ix_assets_sha256", ["sha256"], unique=False)
        batch_op.create_index("ix_assets_kind_collection", ["kind", "collection"], unique=False)
    op.drop_table("asset_aliases")
    op.drop_table("asset_collections")
    op.drop_table("asset_locations")
