from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Amount, Base, Currency, UTCDateTime
from retento.core.scoping import BySite


class Product(Base):
    """A good or a service a site sells. `offer_id` is the shop's own id for it."""

    __tablename__ = "products"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    offer_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="product")  # product | service
    price: Mapped[Decimal] = mapped_column(Amount())
    currency: Mapped[str] = mapped_column(Currency())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("site_id", "offer_id"),)
