from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, JSONType, UTCDateTime
from retento.core.scoping import BySite, by_customer

BigId = BigInteger().with_variant(Integer, "sqlite")


SEARCHED = ("first_name", "last_name", "email", "phone", "external_id")


class Customer(Base):
    __tablename__ = "customers"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    patronymic: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164
    telegram_id: Mapped[str | None] = mapped_column(String(64))
    whatsapp_id: Mapped[str | None] = mapped_column(String(32))
    vk_id: Mapped[str | None] = mapped_column(String(64))
    birthday: Mapped[date | None] = mapped_column(Date)
    personal_dates: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(16))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # tags, interests and granted consents as sorted `tag:vip`, `interest:x`, `consent:email` (customers.labels)
    labels: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=text("'[]'"))
    entry_point: Mapped[str | None] = mapped_column(String(32))
    email_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # Segment rules on a custom field (`eq` / `in` of a string) add `custom_fields @> {...}`, and rules on tags,
    # interests and consent ask `labels @> [...]`: these indexes answer them on PostgreSQL (SQLite has no such
    # index: a custom-field rule reads the JSON of every customer there, a label rule the label tables).
    # The console's search (`ILIKE '%text%'` over names, email and phone, the external id) reads this trigram index on PostgreSQL
    # (pg_trgm; migration 0024 leaves it out where the extension cannot be created: the search then scans).
    __table_args__ = (UniqueConstraint("site_id", "external_id"),
                      Index("ix_customers_custom_fields", "custom_fields", postgresql_using="gin",
                            postgresql_ops={"custom_fields": "jsonb_path_ops"}).ddl_if(dialect="postgresql"),
                      Index("ix_customers_labels", "labels", postgresql_using="gin",
                            postgresql_ops={"labels": "jsonb_path_ops"}).ddl_if(dialect="postgresql"),
                      Index("ix_customers_search", *SEARCHED, postgresql_using="gin",
                            postgresql_ops={c: "gin_trgm_ops" for c in SEARCHED}).ddl_if(dialect="postgresql"))


class CustomerTag(Base):
    __tablename__ = "customer_tags"
    __site_scope__ = by_customer()

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_customer_tags_tag", "tag"),)


class CustomerInterest(Base):
    __tablename__ = "customer_interests"
    __site_scope__ = by_customer()

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    interest: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_customer_interests_interest", "interest"),)


class Consent(Base):
    """Current consent of one customer for one channel, with when and where it was given or withdrawn."""

    __tablename__ = "customer_consents"
    __site_scope__ = by_customer()

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_customer_consents_channel", "channel", "granted"),)


class CustomerMerge(Base):
    """Where a merged-away duplicate went: its id (and externalId) now answer with the kept customer
    (`customers.merging`). A merge into a customer that is itself merged later is moved on to the new one, so
    every row names a customer that exists."""

    __tablename__ = "customer_merges"
    __site_scope__ = BySite()

    merged_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kept_id: Mapped[int] = mapped_column(BigInteger, index=True)
    site_id: Mapped[int] = mapped_column(Integer)
    merged_external_id: Mapped[str | None] = mapped_column(String(64))
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str | None] = mapped_column(String(200), index=True)

    __table_args__ = (Index("ix_customer_merges_external", "site_id", "merged_external_id"),)
