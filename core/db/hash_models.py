"""Tables of the near-duplicate feature: perceptual hashes of assets and variant links between assets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.models import Asset, Base, BigId, utcnow


class PerceptualHash(Base):
    """pHash and dHash of an image, or of one scene frame of a video (``t_start`` then says which)."""

    __tablename__ = "perceptual_hashes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    t_start: Mapped[float | None] = mapped_column(Float, nullable=True)
    phash: Mapped[int] = mapped_column(BigInteger)
    dhash: Mapped[int] = mapped_column(BigInteger)

    # One-way, so the asset model needs no change; it makes a flush insert the asset before its hashes.
    asset: Mapped[Asset] = relationship(foreign_keys=[asset_id])


class AssetVariant(Base):
    """An asset ingested as a near copy of a group's best asset: hidden from search, shown with its best."""

    __tablename__ = "asset_variants"

    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    best_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    distance: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    asset: Mapped[Asset] = relationship(foreign_keys=[asset_id])
