from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Amount, Base, Currency, JSONType, UTCDateTime
from retento.core.scoping import GLOBAL, BySite, Through

BigId = BigInteger().with_variant(Integer, "sqlite")


class StatusGroup(Base):
    __tablename__ = "status_groups"
    __site_scope__ = GLOBAL

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    name_ru: Mapped[str] = mapped_column(String(255))
    ordering: Mapped[int] = mapped_column(Integer)


class Status(Base):
    __tablename__ = "statuses"
    __site_scope__ = GLOBAL

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    name_ru: Mapped[str] = mapped_column(String(255))
    group_code: Mapped[str] = mapped_column(ForeignKey("status_groups.code"))
    ordering: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)


class Order(Base):
    __tablename__ = "orders"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(ForeignKey("statuses.code"), index=True)
    status_updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    currency: Mapped[str] = mapped_column(Currency())
    items_total: Mapped[Decimal] = mapped_column(Amount())  # sum of item lines after their discounts
    discount_total: Mapped[Decimal] = mapped_column(Amount())  # order-level discount
    delivery_cost: Mapped[Decimal] = mapped_column(Amount())
    total: Mapped[Decimal] = mapped_column(Amount())
    paid_amount: Mapped[Decimal] = mapped_column(Amount())
    payment_type: Mapped[str | None] = mapped_column(String(64))
    payment_status: Mapped[str | None] = mapped_column(String(32))
    delivery_type: Mapped[str | None] = mapped_column(String(64))
    delivery_date: Mapped[date | None] = mapped_column(Date)
    delivery_address: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id"))
    customer_comment: Mapped[str | None] = mapped_column(String(2000))
    manager_comment: Mapped[str | None] = mapped_column(String(2000))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # A customer's orders by customer; on PostgreSQL the index also carries what the segments' per-customer
    # rollups and gaps read of each order (`segments.rollups`), so rebuilding a few customers' rollups reads their
    # index entries (side by side) instead of one heap page per order (index-only scan; SQLite: the plain index)
    __table_args__ = (
        UniqueConstraint("site_id", "external_id"),
        UniqueConstraint("site_id", "number"),
        Index("ix_orders_customer_id", "customer_id", postgresql_include=["status", "site_id", "total", "created_at"]),
    )


class OrderItem(Base):
    __tablename__ = "order_items"
    __site_scope__ = Through((("order_id", "orders"),))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    offer_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # product | service
    category: Mapped[str | None] = mapped_column(String(255))
    quantity: Mapped[Decimal] = mapped_column(Amount(3))
    price: Mapped[Decimal] = mapped_column(Amount())
    discount: Mapped[Decimal] = mapped_column(Amount())  # per line, absolute

    __table_args__ = (Index("ix_order_items_order_id", "order_id"),)


class RevenueBucket(Base):
    """Orders outside the `cancel` group and their total per site, 15-minute UTC slot and currency (orders.revenue):
    every time zone's month starts on a slot boundary, so the dashboard sums slots instead of orders."""

    __tablename__ = "order_revenue_buckets"
    __site_scope__ = BySite()

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # seconds since 1970 UTC // 900
    currency: Mapped[str] = mapped_column(Currency(), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Amount())


class RevenueRollup(Base):
    """How far the revenue buckets reach: slots before `through_slot` are stored, orders from it on are read live."""

    __tablename__ = "order_revenue_rollup"
    __site_scope__ = GLOBAL

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # one row, id 1
    through_slot: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
