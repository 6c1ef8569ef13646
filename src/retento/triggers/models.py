from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from retento.core.db.types import Base, JSONType, UTCDateTime
from retento.core.scoping import ListedSites, by_order_or_customer

BigId = BigInteger().with_variant(Integer, "sqlite")


class Trigger(Base):
    """Event -> condition -> actions, now or after a delay. `definition` is the validated TriggerIn."""

    __tablename__ = "triggers"
    __site_scope__ = ListedSites("definition", "sites", key="code")  # `sites: []` is every site

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    debug_until: Mapped[datetime | None] = mapped_column(UTCDateTime())  # every evaluation is logged until then


class Timer(Base):
    """One delayed run: fires at `due_at`, re-checks the condition, acts, and is marked done in one transaction."""

    __tablename__ = "trigger_timers"
    __site_scope__ = by_order_or_customer()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(16))  # order | customer
    entity_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))  # pending | done | skipped | cancelled | failed
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # fire attempts that broke
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # The run key leads with the entity, so it also finds an entity's runs (a change cancels them, a rule reads
    # them): one index in random order instead of two, on the table written most (a run per delayed match, and
    # an update when it fires). By trigger: few hot spots, appended to.
    __table_args__ = (
        UniqueConstraint("entity", "entity_id", "trigger_id", "event_id"),
        Index("ix_trigger_timers_due", "state", "due_at"),
        Index("ix_trigger_timers_trigger", "trigger_id"),
    )


class Firing(Base):
    """A trigger acted for (entity, triggering event): the unique key makes that happen at most once."""

    __tablename__ = "trigger_firings"
    __site_scope__ = by_order_or_customer()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("trigger_id", "entity", "entity_id", "event_id"),
        Index("ix_trigger_firings_customer", "trigger_id", "customer_id", "at"),
        Index("ix_trigger_firings_order", "trigger_id", "order_id", "at"),
        Index("ix_trigger_firings_at", "trigger_id", "at"),
    )


class Run(Base):
    """The run log: an entry per run that matched (acted, skipped by a rule, failed, scheduled), per re-check at
    fire time, per cancel, and per evaluation error; a condition that is false on an event writes nothing (see
    `retento triggers explain`). The triggers that scheduled a delayed run on an event share one row per event
    (`trigger_id` None, `scheduled`), expanded into one entry per trigger on reading; rows written by older
    versions also list the triggers whose condition was false (`misses`)."""

    __tablename__ = "trigger_runs"
    __site_scope__ = by_order_or_customer()

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # None on an event's shared row (see `scheduled`, `misses`)
    trigger_id: Mapped[int | None] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    phase: Mapped[str] = mapped_column(String(16))  # event | fire | cancel
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    timer_id: Mapped[int | None] = mapped_column(BigInteger)
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))  # acted | scheduled | not_matched | skipped | failed | cancelled
    reason: Mapped[str | None] = mapped_column(Text)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    misses: Mapped[list[list[int]] | None] = mapped_column(JSONType)  # [[trigger id, version, guard part], ...]
    scheduled: Mapped[list[list[Any]] | None] = mapped_column(JSONType)  # [[trigger id, due time ISO], ...]

    __table_args__ = (
        Index("ix_trigger_runs_order", "order_id", "id"),
        Index("ix_trigger_runs_customer", "customer_id", "id"),
        Index("ix_trigger_runs_trigger", "trigger_id", "id"),
        # the Triggers list's counts of the last 24 hours (`service.recent_counts`): a range of `at`, read from
        # the index alone on PostgreSQL
        Index("ix_trigger_runs_at", "at", "trigger_id", "phase", "outcome"),
        # what explain attaches to an entity's last events (`service._runs_of_events`)
        Index("ix_trigger_runs_event", "event_id"),
    )
