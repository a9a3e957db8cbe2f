"""perceptual hashes of images and scene frames, and variant links for near-duplicate copies

Revision ID: 0008_perceptual_hashes
Revises: 0006_media_understanding
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_perceptual_hashes"
down_revision = "0006_media_understanding"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "perceptual_hashes",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("asset_id", sa.String(length=32), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("t_start", sa.Float(), nullable=True),
        sa.Column("phash", sa.BigInteger(), nullable=False),
        sa.Column("dhash", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_perceptual_hashes_asset_id", "perceptual_hashes", ["asset_id"])
    op.create_table(
        "asset_variants",
        sa.Column("asset_id", sa.String(length=32), sa.ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("best_id", sa.String(length=32), sa.ForeignKey("assets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("distance", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_asset_variants_best_id", "asset_variants", ["best_id"])


def downgrade() -> None:
    op.drop_index("ix_asset_variants_best_id", table_name="asset_variants")
    op.drop_table("asset_variants")
    op.drop_index("ix_perceptual_hashes_asset_id", table_name="perceptual_hashes")
    op.drop_table("perceptual_hashes")
