"""Messaging tables: prices and policies per site, templates, cascades, campaigns, runs and the outbox."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Amount, Base, Currency, JSONType, Leased, UTCDateTime
from retento.core.scoping import BySite, Through, by_customer

BigId = BigInteger().with_variant(Integer, "sqlite")
SENDING = ("claimed", "sending")  # message statuses under a worker's lease


class ChannelPrice(Base):
    """What one message (one SMS segment) costs on a channel for a site, and the read rate to expect."""

    __tablename__ = "msg_prices"
    __site_scope__ = BySite()

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    price: Mapped[Decimal] = mapped_column(Amount(scale=4))
    currency: Mapped[str] = mapped_column(Currency())
    expected_read_rate: Mapped[Decimal | None] = mapped_column(Amount(scale=4))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SitePolicy(Base):
    """Quiet hours (minutes after local midnight) and the marketing frequency cap of a site."""

    __tablename__ = "msg_policies"
    __site_scope__ = BySite()

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    quiet_start: Mapped[int | None] = mapped_column(Integer)
    quiet_end: Mapped[int | None] = mapped_column(Integer)
    cap_count: Mapped[int | None] = mapped_column(Integer)
    cap_period_seconds: Mapped[int] = mapped_column(Integer)
    default_language: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Template(Base):
    __tablename__ = "msg_templates"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    provider_template: Mapped[str | None] = mapped_column(String(128))  # WhatsApp approved template name
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("site_id", "name", "channel", "language"),)


class Cascade(Base):
    __tablename__ = "msg_cascades"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(16))  # ordered | cheapest_read
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)  # [{channel, template, wait_seconds, go_on}]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Campaign(Base):
    __tablename__ = "msg_campaigns"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    cascade_id: Mapped[int] = mapped_column(ForeignKey("msg_cascades.id"))
    name: Mapped[str] = mapped_column(String(128))
    message_class: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # scheduled | running (finished: no run waiting, see reports)
    audience: Mapped[str] = mapped_column(String(16), server_default=text("'ids'"))  # ids segment everyone rules
    segment_id: Mapped[int | None] = mapped_column(Integer)  # audience: the segment's members at start time
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # audience: who matches it at start time
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    members: Mapped[int] = mapped_column(Integer)  # list size; for a segment, its size when started
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_msg_campaigns_due", "status", "start_at"),)


class CampaignMember(Base):
    __tablename__ = "msg_campaign_members"
    __site_scope__ = Through((("campaign_id", "msg_campaigns"),))

    campaign_id: Mapped[int] = mapped_column(ForeignKey("msg_campaigns.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class Run(Base):
    """One customer going through one cascade; `due_at` is its timer (the end of the current window).

    Runs and messages carry their cascade, campaign and template ids without foreign keys: they are written a
    million at a time from rows the service has just loaded, and cascades, campaigns and templates are never
    deleted; a per-row key check cost a third of a campaign start."""

    __tablename__ = "msg_runs"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cascade_id: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[int | None] = mapped_column(Integer, index=True)
    site_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    message_class: Mapped[str] = mapped_column(String(16))
    plan: Mapped[list[int] | None] = mapped_column(JSONType)  # step indexes in the order this customer gets them
    pos: Mapped[int] = mapped_column(Integer, default=-1)  # index into plan of the step last sent
    state: Mapped[str] = mapped_column(String(8))  # waiting | done
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(32))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_msg_runs_due", "state", "due_at"),)


class Message(Leased, Base):
    """The outbox: one row per message with its status timeline, provider id and cost."""

    __tablename__ = "msg_messages"
    __site_scope__ = BySite()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    cascade_id: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer)
    message_class: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(10))  # outbox.queue(): queued claimed sending sent ... uncertain
    reason: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(320))
    provider_id: Mapped[str | None] = mapped_column(String(200))
    units: Mapped[int] = mapped_column(Integer, default=1)
    cost: Mapped[Decimal] = mapped_column(Amount(scale=4))
    currency: Mapped[str] = mapped_column(Currency())
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when the last attempt began
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_msg_messages_queue", "status", "not_before"),
        Index("ix_msg_messages_provider", "channel", "provider_id", postgresql_where=text("provider_id IS NOT NULL"),
              sqlite_where=text("provider_id IS NOT NULL")),  # queued messages have none: no index entry
        Index("ix_msg_messages_customer", "customer_id", "created_at"),
        Index("ix_msg_messages_cascade", "cascade_id", "campaign_id"),  # reports: a cascade, or one campaign of it
    )


class Device(Base):
    """A mobile app installation of a customer (FCM registration token)."""

    __tablename__ = "msg_devices"
    __site_scope__ = by_customer()

    token: Mapped[str] = mapped_column(String(512), primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger, index=True)
    platform: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
