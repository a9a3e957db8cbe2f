"""segments get metadata (OCR boxes and confidences); asset_passes records finished passes such as OCR

Revision ID: 0006_media_understanding
Revises: 0007_assets_locations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_media_understanding"
down_revision = "0007_assets_locations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metadata", sa.JSON(), nullable=True))
    op.create_table(
        "asset_passes",
        sa.Column("asset_id", sa.String(length=32), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", "name"),
    )
    op.create_index("ix_asset_passes_name", "asset_passes", ["name"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_asset_passes_name", table_name="asset_passes")
    op.drop_table("asset_passes")
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_column("metadata")
