"""full-text search over transcripts, file names and tags

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Assets ingested before this revision become findable by name (tags were never searchable before).
_BACKFILL = "SELECT id, NULL, name FROM assets WHERE status = 'indexed'"


def upgrade() -> None:
    op.create_table(
        "text_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.String(length=32), nullable=False),
        sa.Column("segment_id", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_text_entries_asset_id", "text_entries", ["asset_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("INSERT INTO text_entries (asset_id, segment_id, body) " + _BACKFILL)
        op.execute("CREATE INDEX ix_text_entries_tsv ON text_entries USING GIN (to_tsvector('english', body))")
        return
    # SQLite: an FTS5 index over text_entries kept in step by triggers (cascading deletes fire them too).
    op.execute(
        "CREATE VIRTUAL TABLE text_fts USING fts5(body, content='text_entries', content_rowid='id', "
        "tokenize='porter unicode61')"
    )
    op.execute(
        "CREATE TRIGGER text_entries_ai AFTER INSERT ON text_entries BEGIN "
        "INSERT INTO text_fts(rowid, body) VALUES (new.id, new.body); END"
    )
    op.execute("INSERT INTO text_entries (asset_id, segment_id, body) " + _BACKFILL)
    op.execute(
        "CREATE TRIGGER text_entries_ad AFTER DELETE ON text_entries BEGIN "
        "INSERT INTO text_fts(text_fts, rowid, body) VALUES ('delete', old.id, old.body); END"
    )
    op.execute(
        "CREATE TRIGGER text_entries_au AFTER UPDATE ON text_entries BEGIN "
        "INSERT INTO text_fts(text_fts, rowid, body) VALUES ('delete', old.id, old.body); "
        "INSERT INTO text_fts(rowid, body) VALUES (new.id, new.body); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("text_entries_ai", "text_entries_ad", "text_entries_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS text_fts")
    op.drop_table("text_entries")
