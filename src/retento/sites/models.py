from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, Currency, JSONType, UTCDateTime
from retento.core.scoping import GLOBAL, BySite


class Site(Base):
    """A shop. Customers, orders and products belong to exactly one site."""

    __tablename__ = "sites"
    __site_scope__ = BySite("id")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(Currency())
    currencies: Mapped[list[str]] = mapped_column(JSONType)  # accepted order currencies
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    default_region: Mapped[str] = mapped_column(String(2), default="RU")
    url: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Manager(Base):
    """A person working in the CRM (manager, operator); the `user` actor of history rows."""

    __tablename__ = "managers"
    __site_scope__ = GLOBAL

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
