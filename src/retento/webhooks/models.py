from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, JSONType, Leased, UTCDateTime
from retento.core.scoping import ListedSites, Through

BigId = BigInteger().with_variant(Integer, "sqlite")
PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"  # WebhookDelivery.status


class WebhookSubscription(Base):
    """Where to POST which event types; signed with `secret`. Disabled after too many failures in a row."""

    __tablename__ = "webhook_subscriptions"
    __site_scope__ = ListedSites("site_ids")  # None is every site

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(JSONType)  # ["*"]: every type
    site_ids: Mapped[list[int] | None] = mapped_column(JSONType, nullable=True)  # None: every site
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Leased, Base):
    """One POST to make (the outbox row) with its retry state: an event for a subscription, or a call of a
    trigger's `webhook` action (`trigger_id`, its own `url` and `secret`, deduplicated on `idempotency_key`)."""

    __tablename__ = "webhook_deliveries"
    __site_scope__ = Through((("subscription_id", "webhook_subscriptions"), ("trigger_id", "triggers")))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"))
    trigger_id: Mapped[int | None] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    url: Mapped[str | None] = mapped_column(String(2000))  # a trigger's call; a subscription's is on it
    secret: Mapped[str | None] = mapped_column(String(200))  # a trigger's call: None sends it unsigned
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)  # a trigger's call
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))  # a trigger's call: "trigger"
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))  # pending | sending (leased) | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
        Index("ix_webhook_deliveries_trigger", "trigger_id", "id"),
    )


class WebhookAttempt(Base):
    """The delivery log: every HTTP attempt with its status code or error."""

    __tablename__ = "webhook_attempts"
    __site_scope__ = Through((("delivery_id", "webhook_deliveries"),))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
