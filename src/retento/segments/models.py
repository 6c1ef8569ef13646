"""Segments, their members and membership history, per-customer order rollups, RFM scores, cohort settings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Amount, Base, JSONType, UTCDateTime
from retento.core.scoping import BySite, Through, by_customer

BigId = BigInteger().with_variant(Integer, "sqlite")


class Segment(Base):
    __tablename__ = "segments"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # dynamic | static
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    time_dependent: Mapped[bool] = mapped_column(Boolean, default=False)  # windows relative to now
    size: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("uq_segments_site_code", "site_id", "code", unique=True),)


class SegmentMember(Base):
    __tablename__ = "segment_members"
    __site_scope__ = Through((("segment_id", "segments"),))

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_segment_members_customer", "customer_id"),)


class SegmentChange(Base):
    """Membership history: one row per entry or exit. Segment size at any time is the running sum."""

    __tablename__ = "segment_changes"
    __site_scope__ = Through((("segment_id", "segments"),))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    entered: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_segment_changes_segment", "segment_id", "id"),
        Index("ix_segment_changes_customer", "customer_id", "id"),
    )


class DirtyCustomer(Base):
    """Customers whose rollup and memberships must be re-evaluated (filled by the event subscriber)."""

    __tablename__ = "segment_dirty"
    __site_scope__ = by_customer()

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claim: Mapped[str | None] = mapped_column(String(32), index=True)  # the batch re-evaluating it now


class CustomerRollup(Base):
    """Per-customer order aggregates over purchases (orders not in the `cancel` status group).

    Days are UTC calendar days. `purchase_days` counts distinct days with a purchase, `first_day_total`
    is the money spent on the first purchase day: BTYD frequency = purchase_days - 1, monetary value =
    (orders_total - first_day_total) / frequency.
    """

    __tablename__ = "customer_rollups"
    __site_scope__ = BySite()

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, index=True)
    orders_count: Mapped[int] = mapped_column(Integer)
    orders_total: Mapped[Decimal] = mapped_column(Amount())
    purchase_days: Mapped[int] = mapped_column(Integer)
    first_day_total: Mapped[Decimal] = mapped_column(Amount())
    first_order_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_order_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OrderCategoryFact(Base):
    """What one purchase contributes to its customer's category rollups: the order's amount per item category
    (item lines after their discounts). Kept per order, so an order event is applied as a one-order delta."""

    __tablename__ = "order_category_facts"
    __site_scope__ = BySite()

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    category: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    site_id: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Amount())
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # the order's created_at

    __table_args__ = (
        Index("ix_order_category_facts_customer", "customer_id", "category"),
        Index("ix_order_category_facts_window", "site_id", "category", "at", "customer_id"),
    )


class CustomerCategoryRollup(Base):
    """Per customer and item category: purchases with an item of the category, their amount, first and last."""

    __tablename__ = "customer_category_rollups"
    __site_scope__ = BySite()

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    category: Mapped[str] = mapped_column(String(255), primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer)
    orders_count: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Amount())
    first_order_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_order_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_customer_category_rollups_site", "site_id", "category", "last_order_at", "customer_id"),
    )


class CustomerGap(Base):
    """Per customer: how many of the gaps between their consecutive purchase days are of each length, in one text
    (`gap:n` items joined by commas; `rollups.gap_counts` reads it), rebuilt with the customer's rollup. One row
    per customer: the incremental path reads the old counts back from the DELETE that drops it. The site's totals
    (`GapCount`) follow from deltas of these rows."""

    __tablename__ = "customer_gaps"
    __site_scope__ = BySite()

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, index=True)
    gaps: Mapped[str] = mapped_column(Text)


class GapCount(Base):
    """Per site: the histogram of the gaps between consecutive purchase days over every customer, kept from the
    customers' deltas, so the lifecycle threshold (the median gap) is read from it instead of every order."""

    __tablename__ = "segment_gap_counts"
    __site_scope__ = BySite()

    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gap: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class SegmentSize(Base):
    """A segment's size at the end of a UTC day on which it changed (the console's chart fills the days between)."""

    __tablename__ = "segment_sizes"
    __site_scope__ = Through((("segment_id", "segments"),))

    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    size: Mapped[int] = mapped_column(Integer)


class RfmScore(Base):
    """RFM values (BTYD convention) and scores of one customer, with BG/NBD + Gamma-Gamma predictions."""

    __tablename__ = "rfm_scores"
    __site_scope__ = BySite()

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer)
    frequency: Mapped[int] = mapped_column(Integer)
    recency: Mapped[int] = mapped_column(Integer)  # days from first to last purchase
    age: Mapped[int] = mapped_column(Integer)  # T: days from first purchase to the end of observation
    monetary: Mapped[Decimal] = mapped_column(Amount())
    r: Mapped[int] = mapped_column(Integer)
    f: Mapped[int] = mapped_column(Integer)
    m: Mapped[int] = mapped_column(Integer)
    cell: Mapped[str] = mapped_column(String(64))
    expected_purchases: Mapped[float | None] = mapped_column(Float)
    ltv: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_rfm_scores_site_cell", "site_id", "cell"),)


class SegmentSettings(Base):
    """Per-site settings: RFM configuration, lifecycle threshold override, the last computed threshold, the
    stored cohort report."""

    __tablename__ = "segment_settings"
    __site_scope__ = BySite()

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    rfm: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    threshold_days: Mapped[int | None] = mapped_column(Integer)  # set by the user: wins over the computed one
    computed_threshold_days: Mapped[float | None] = mapped_column(Float)
    rfm_computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # the lifecycle cohort report as `analytics.store_cohort_report` last computed it (what the console shows)
    cohort_report: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    cohort_computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Initiative(Base):
    """A marketing initiative shown on the cohort timeline (campaign, trigger switched on, loyalty launch)."""

    __tablename__ = "marketing_initiatives"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
